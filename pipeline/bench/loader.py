"""``python -m pipeline bench loader``: clips/s of the loader's worker side (and with
``DeviceAugment`` on the CPU) against the fastest raw decoder, per worker count.

The peer is measured in the same run on the same shards: each of the three backends
(torchcodec, decord, PyAV) decoding the same number of frames per clip from in-memory
mp4 bytes with nothing else; the fastest is the peer, measured again right before and
after each loader run (this machine's speed drifts between minutes). For w workers the
peer runs in w processes at once: cores share caches and memory bandwidth, so one
core's rate times w is not what w cores can do. Also reported: the bytes per clip that
cross from the workers to the training process, the training process's CPU time per
batch (DeviceAugment excluded), the machine's load average next to every number, a
per-clip profile of the worker side, and GDT's paper setting (30 frames at 112 px).

The loader runs with its default ``backend=auto`` unless told otherwise; the JSON says
what auto chose (``backend_used``) and its start-up figures (``auto_ms_per_clip``).
``--recipe NAME`` measures at a paper recipe's loader setting (frames, size, views,
audio; ``loader_recipes.py``), where "clip" means a sample with all its views and the
peer decodes the same frames (GDT: both time-shifted clips); ``--recipes all`` adds
each paper recipe under the JSON key ``recipes``.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import resource
import time
from dataclasses import dataclass, field, replace

import torch

from pipeline.bench.loader_recipes import (RECIPES, at_rate, for_run, recipe_loader, recipe_names, setting,
                                           shard_audio_rate)
from pipeline.bench.loader_peer import PeerSamples, parallel_rate, profile_clip, raw_rate
from pipeline.config import MISSING, load_config
from pipeline.io.atomic import write_json
from pipeline.loader.backend_choice import choose_backend
from pipeline.loader.decode import BACKENDS
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards

log = logging.getLogger(__name__)


@dataclass
class Config:
    shards: str = field(default=MISSING, metadata={"help": "shard folder, glob or brace pattern"})
    workers: str = field(default="0,1,2", metadata={"help": "comma-separated worker counts to measure", "pattern": r"\d+(,\d+)*"})
    batch_size: int = field(default=16, metadata={"help": "clips per batch", "min": 1})
    batches: int = field(default=24, metadata={"help": "batches timed per worker count (after one warm-up batch)", "min": 1})
    frames: int = field(default=8, metadata={"help": "frames per clip", "min": 1})
    stride: int = field(default=1, metadata={"help": "frame stride", "min": 1})
    size: int = field(default=112, metadata={"help": "crop size", "min": 1})
    backend: str = field(default="auto", metadata={"help": f"the loader's decoder: auto (the loader's default) | {' | '.join(BACKENDS)}", "choices": ["auto", *BACKENDS]})
    recipe: str = field(default="", metadata={"help": f"measure at this recipe's loader setting (frames, size, views, audio) instead of frames/stride/size: {' | '.join(RECIPES)}"})
    recipes: str = field(default="", metadata={"help": "all | comma-separated recipes: the default setting, then each recipe's (JSON key recipes)"})
    raw_clips: int = field(default=200, metadata={"help": "clips decoded per single-process raw measurement", "min": 1})
    raw_samples: int = field(default=256, metadata={"help": "shard samples the raw peers draw clips from", "min": 1})
    raw_seconds: float = field(default=2.0, metadata={"help": "seconds each process of a parallel raw peer decodes", "above": 0})
    paper_batches: int = field(default=8, metadata={"help": "batches timed at GDT's paper setting (30 frames, 112 px, 2 workers); 0 = skip", "min": 0})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def load() -> float:
    """The machine's 1-minute load average, recorded next to each number."""
    return round(os.getloadavg()[0], 2)


def default_template(cfg: Config) -> LoaderConfig:
    """The bench's own setting: ``frames`` x ``size`` px clips, one view, default audio."""
    return load_config(LoaderConfig, [], [f"clip.frames={cfg.frames}", f"clip.stride={cfg.stride}",
                                          f"video.size={cfg.size}"])


def _loader_cfg(cfg: Config, workers: int, frames: int, template: LoaderConfig | None = None,
                batches: int | None = None) -> LoaderConfig:
    t = template or default_template(cfg)
    t = replace(t, clip=replace(t.clip, frames=frames))
    return for_run(t, cfg.shards, workers, cfg.batch_size, batches or cfg.batches, cfg.backend)


def crossing_bytes(batch: dict) -> int:
    """Bytes of a batch that cross from a worker: its tensors' memory and the pickle of
    everything else (the numpy fields travel inside it)."""
    rest = {k: v for k, v in batch.items() if not isinstance(v, torch.Tensor)}
    return sum(v.nbytes for v in batch.values() if isinstance(v, torch.Tensor)) + len(pickle.dumps(rest))


def loader_rate(cfg: Config, workers: int, frames: int, batches: int, augment: bool,
                template: LoaderConfig | None = None) -> dict:
    """clips/s over ``batches`` batches after a warm-up one; the training process's CPU
    time per batch (all its threads, not the workers) and the bytes per clip."""
    lcfg = _loader_cfg(cfg, workers, frames, template, batches)
    aug = DeviceAugment.from_loader(lcfg) if augment else None
    loader = ClipLoader(lcfg)
    it = iter(loader)
    first = next(it)  # warm-up: worker start, first shard open
    per_clip = crossing_bytes(first) / len(first["key"])
    cpu0, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        batch = next(it)
        if aug is not None:
            aug(batch)
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    del it
    cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / batches
    return {"clips_per_s": batches * cfg.batch_size / wall, "cpu_ms": 1000 * cpu, "bytes_per_clip": per_clip,
            "backend": loader.cfg.clip.backend}


def _peer(cfg: Config, samples: PeerSamples, backend: str, frames: int, workers: int, seed: int,
          positions: int = 1, min_shift: float = 0.0) -> float:
    if workers > 1:
        return parallel_rate(samples, backend, frames, cfg.stride, workers, cfg.raw_seconds, seed, positions,
                             min_shift)
    return raw_rate(samples, backend, frames, cfg.stride, seed, clips=cfg.raw_clips, positions=positions,
                    min_shift=min_shift)


def measure(cfg: Config, samples: PeerSamples, template: LoaderConfig) -> dict:
    """One setting (``template``'s frames, size, views, audio) at every worker count:
    the loader's worker side against the fastest raw decoder decoding the same frames."""
    c = template.clip
    bench_cfg = replace(cfg, stride=c.stride)
    frames, positions, shift = c.frames, c.positions, c.min_shift
    raw = {b: round(raw_rate(samples, b, frames, c.stride, 0, clips=cfg.raw_clips, positions=positions,
                             min_shift=shift), 2)
           for b in BACKENDS}
    peer_backend = max(raw, key=raw.get)
    per: dict[str, dict] = {}
    for i, w in enumerate(int(x) for x in str(cfg.workers).split(",")):
        before = _peer(bench_cfg, samples, peer_backend, frames, w, 2 * i + 1, positions, shift)
        load_before = load()
        side = loader_rate(cfg, w, frames, cfg.batches, augment=False, template=template)
        with_aug = loader_rate(cfg, w, frames, cfg.batches, augment=True, template=template)
        load_after = load()
        after = _peer(bench_cfg, samples, peer_backend, frames, w, 2 * i + 2, positions, shift)
        peer = (before + after) / 2
        per[str(w)] = {"clips_per_s": round(side["clips_per_s"], 2),
                       "with_device_augment_clips_per_s": round(with_aug["clips_per_s"], 2),
                       "peer_clips_per_s": round(peer, 2), "peer_before_after": [round(before, 2), round(after, 2)],
                       "ratio": round(side["clips_per_s"] / peer, 3),
                       "main_process_cpu_per_batch_ms": round(side["cpu_ms"], 3),
                       "load": [load_before, load_after]}
        log.info("workers=%d: %.1f clips/s (%.1f with DeviceAugment), peer %s %.1f, ratio %.2f, main %.2f ms/batch",
                 w, side["clips_per_s"], with_aug["clips_per_s"], peer_backend, peer, per[str(w)]["ratio"],
                 side["cpu_ms"])
    lcfg = _loader_cfg(cfg, 0, frames, template)
    views = c.positions * c.copies  # source views: a reversed view is made on the device
    clip_bytes = views * frames * template.video.size ** 2 * 3
    wave_bytes = views * 2 * int(round(template.audio.rate * template.audio.seconds)) if "audio" in template.modalities else 0
    chosen = ClipLoader(lcfg).cfg.clip.backend  # auto: the choice (cached for this process)
    result = {**setting(template), "backend": cfg.backend, "backend_used": chosen,
              "auto_ms_per_clip": choose_backend(expand_shards(cfg.shards), frames, c.stride, positions,
                                                 shift if positions > 1 else 0.0)[1]
              if cfg.backend == "auto" else {},
              "raw_clips_per_s": raw, "peer_backend": peer_backend,
              "per_workers": per, "bytes_per_clip": round(side["bytes_per_clip"], 1),
              "bytes_per_clip_beyond_clip_and_wave": round(side["bytes_per_clip"] - clip_bytes - wave_bytes, 1),
              "profile_ms_per_clip": profile_clip(samples, replace(lcfg, clip=replace(lcfg.clip, backend=chosen)))}
    if "1" in per and "2" in per:
        result["scaling_1_to_2"] = round(per["2"]["clips_per_s"] / per["1"]["clips_per_s"], 3)
        # what the machine itself gives: two raw decoders together against one
        result["raw_scaling_1_to_2"] = round(per["2"]["peer_clips_per_s"] / per["1"]["peer_clips_per_s"], 3)
    return result


def run(cfg: Config) -> dict:
    torch.set_num_threads(1)
    samples = PeerSamples.from_shards(expand_shards(cfg.shards), cfg.raw_samples)
    rate = shard_audio_rate(samples)
    template = at_rate(recipe_loader(cfg.recipe), rate) if cfg.recipe else default_template(cfg)
    result = {"shards": cfg.shards, "batch_size": cfg.batch_size, "recipe": cfg.recipe or None,
              **measure(cfg, samples, template)}
    if cfg.paper_batches and not cfg.recipe:
        paper = loader_rate(cfg, 2, 30, cfg.paper_batches, augment=False)
        peer = parallel_rate(samples, result["peer_backend"], 30, cfg.stride, 2, cfg.raw_seconds, 99)
        result["paper_setting"] = {"frames": 30, "size": cfg.size, "workers": 2,
                                   "clips_per_s": round(paper["clips_per_s"], 2), "peer_clips_per_s": round(peer, 2),
                                   "ratio": round(paper["clips_per_s"] / peer, 3),
                                   "main_process_cpu_per_batch_ms": round(paper["cpu_ms"], 3), "load": load()}
    if cfg.recipes:
        result["recipes"] = {}
        for name in recipe_names(cfg.recipes):
            log.info("recipe %s", name)
            result["recipes"][name] = measure(cfg, samples, at_rate(recipe_loader(name), rate))
    result["load_at_end"] = load()
    if cfg.json:
        write_json(cfg.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
