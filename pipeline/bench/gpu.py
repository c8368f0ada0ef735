"""``python -m pipeline bench gpu`` (``make gpu-check``): the data path and the paper-scale
GDT recipe on one CUDA GPU, as JSON.

1. the loader's worker side with CPU decoding (``workers`` processes) and with
   torchcodec decoding on the GPU (``clip.decode_device=cuda``, in the training process);
2. ``DeviceAugment`` on the GPU (colour, normalisation, log-mel, SpecAugment, reversal);
3. ``steps`` optimizer steps of ``GDT_PAPER_CONFIG`` (R(2+1)D-18 + ResNet-9, 30 frames,
   bf16, DeepSpeed on NCCL) on one GPU: steps/s and peak GPU memory.

Without ``shards`` it first makes a small synthetic corpus sharded as the recipe wants
(30 fps, 128 px short side, 24 kHz audio). Without CUDA it stops with one clear error.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.cli import build_config
from pipeline.config import CONFIGS, load_config
from pipeline.errors import InputError
from pipeline.io.atomic import write_json
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader
from pipeline.shard.index import has_index
from pipeline.stages import STAGES
from pipeline.train.config import TrainConfig
from pipeline.train.metrics_log import read_metrics

GDT_PAPER_CONFIG = CONFIGS / "gdt_k400.yaml"  # the paper-scale GDT recipe


@dataclass
class Config:
    shards: str = field(default="", metadata={"help": "shards (30 fps, 24 kHz audio); empty = make a small synthetic set under work"})
    work: str = field(default="", metadata={"help": "scratch folder (synthetic shards, the training run); empty = a temporary one"})
    videos: int = field(default=48, metadata={"help": "synthetic videos to make when shards is empty", "min": 1})
    workers: int = field(default=8, metadata={"help": "loader workers for the CPU-decode measurement and the training run", "min": 0})
    batches: int = field(default=20, metadata={"help": "batches timed per loader measurement", "min": 1})
    steps: int = field(default=20, metadata={"help": "optimizer steps of the GDT recipe", "min": 1})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def _stage(name: str, overrides: list[str], files: tuple[str, ...] = ()) -> dict:
    spec = STAGES[name]
    return spec.load_target()(build_config(spec, list(files), overrides))


def _synthetic_shards(work: Path, videos: int) -> str:
    corpus, shards = work / "corpus", work / "shards"
    if not has_index(shards):
        _stage("synth", [f"out={corpus}", f"n_videos={videos}", "seconds=4", "size=160", "fps=30",
                         "audio_rate=24000"])
        _stage("shard", [f"input={corpus / 'manifest.jsonl'}", f"output={shards}", "fps=30",
                         "short_side=128", "audio_rate=24000", "clip_seconds=4"])
    return str(shards)


def _timed_batches(loader: ClipLoader, batches: int, augment: DeviceAugment | None = None) -> float:
    """clips/s over ``batches`` batches after a warm-up one (CUDA work synchronised)."""
    it = iter(loader)
    next(it)
    torch.cuda.synchronize()
    start, clips = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(it)
        if augment is not None:
            batch = augment(batch)
        clips += len(batch["key"])
    torch.cuda.synchronize()
    return clips / (time.perf_counter() - start)


def run(cfg: Config) -> dict:
    if not torch.cuda.is_available():
        raise InputError("bench gpu needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
    work = Path(cfg.work or tempfile.mkdtemp(prefix="bench-gpu-"))
    shards = cfg.shards or _synthetic_shards(work, cfg.videos)
    out = work / "gdt"

    def recipe(*overrides: str) -> TrainConfig:
        return load_config(TrainConfig, [GDT_PAPER_CONFIG], [f"out={out}", f"loader.shards={shards}",
                                                             f"loader.epoch_batches={cfg.batches + 1}", *overrides])
    lcfg = recipe(f"loader.workers={cfg.workers}").loader
    result: dict = {"device": torch.cuda.get_device_name(), "shards": shards,
                    "clip": {"frames": lcfg.clip.frames, "size": lcfg.video.size, "views": 2 * lcfg.clip.positions,
                             "batch_size": lcfg.batch_size}}
    result["loader_cpu_decode_clips_per_s"] = round(_timed_batches(ClipLoader(lcfg), cfg.batches), 2)
    gpu = recipe("loader.workers=0", "loader.clip.decode_device=cuda").loader
    try:
        result["loader_cuda_decode_clips_per_s"] = round(_timed_batches(ClipLoader(gpu), cfg.batches), 2)
        batch = next(iter(ClipLoader(gpu)))
    except RuntimeError as err:  # e.g. a torchcodec build without CUDA: say so, go on
        result["loader_cuda_decode_error"] = str(err).splitlines()[0][:300]
        batch = next(iter(ClipLoader(lcfg)))
    augment = DeviceAugment.from_loader(lcfg, torch.bfloat16).to("cuda")
    augment(batch)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(cfg.batches):
        augment(batch)
    torch.cuda.synchronize()
    result["device_augment_clips_per_s"] = round(cfg.batches * len(batch["key"]) / (time.perf_counter() - start), 2)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trained = _stage("train", [f"out={out}", f"loader.shards={shards}", f"loader.workers={cfg.workers}",
                               f"steps={cfg.steps}", "log_every=5", "tensorboard=false", "ds.precision=bf16",
                               f"ckpt.every={cfg.steps}"], (str(GDT_PAPER_CONFIG),))
    wall = time.perf_counter() - start
    rows = read_metrics(out)
    late = rows[1:] or rows  # the first window holds start-up and cuDNN autotuning
    clips_s = sum(r["clips_per_s"] for r in late) / len(late)
    result["train"] = {"config": str(GDT_PAPER_CONFIG.name), "steps": trained["step"], "precision": "bf16",
                       "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else "nccl",
                       "steps_per_s": round(clips_s / lcfg.batch_size, 3), "clips_per_s": round(clips_s, 2),
                       "data_wait_frac": round(sum(r["data_wait_frac"] for r in late) / len(late), 3),
                       "wall_s_with_start_up": round(wall, 1),
                       "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)}
    if cfg.json:
        write_json(cfg.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
