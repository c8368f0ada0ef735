"""``python -m pipeline export RUN_DIR --out DIR``: each backbone of a training run as
safetensors plus a JSON config (architecture and the input it expects)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.config import MISSING, load_config, save_config
from pipeline.errors import InputError
from pipeline.export.spec import write_spec
from pipeline.io.atomic import atomic_open, save_safetensors
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    run_dir: str = field(default=MISSING, metadata={"help": "training run folder (config.yaml, final/method.safetensors)"})
    out: str = field(default=MISSING, metadata={"help": "export folder: one sub-folder per modality"})
    torchscript: bool = field(default=False, metadata={"help": "also write a TorchScript backbone (backbone.ts)"})


def _input_spec(cfg: TrainConfig, kind: str, fps: float | None) -> dict:
    lc = cfg.loader
    if kind == "video":
        return {"frames": lc.clip.frames, "stride": lc.clip.stride, "fps": fps, "size": lc.video.size,
                "mean": list(lc.video.mean), "std": list(lc.video.std), "layout": "B,C,T,H,W",
                "value_range": "RGB in [0,1], then (x - mean) / std"}
    if kind == "audio":
        a = lc.audio
        return {"rate": a.rate, "seconds": a.seconds, "n_mels": a.n_mels, "win_ms": a.win_ms,
                "hop_ms": a.hop_ms, "layout": "B,1,n_mels,frames",
                "features": "torchaudio MelSpectrogram(power) -> AmplitudeToDB(top_db=80) -> per-clip standardisation"}
    return {"tokenizer": "bytes: 0 pad, 1..256 UTF-8 byte+1, 257 bos, 258 eos", "max_len": lc.clip.text_len,
            "layout": "ids B,L + lengths B"}


def _shard_fps(cfg: TrainConfig) -> float | None:
    """The frame rate the shards were written at (from the shard run's config.yaml)."""
    base = Path(cfg.loader.shards)
    shard_cfg = (base if base.is_dir() else base.parent) / "config.yaml"
    if shard_cfg.exists():  # read as data: an interpolation there is not resolved
        from omegaconf import OmegaConf
        fps = OmegaConf.to_container(OmegaConf.load(shard_cfg), resolve=False).get("fps")
        return fps if isinstance(fps, (int, float)) and not isinstance(fps, bool) else None
    return None


def export_run(run_dir: Path, out: Path, torchscript: bool = False) -> dict:
    cfg_path, weights = run_dir / "config.yaml", final_weights(run_dir)
    for p in (cfg_path, weights):
        if not p.exists():
            raise InputError(f"{p}: missing; is {run_dir} a finished training run?")
    cfg = load_config(TrainConfig, [cfg_path])
    state = load_file(weights)
    prefix = "model."
    exported = {}
    for kind in ("video", "audio", "text"):
        tower = getattr(cfg.model, kind)
        if not tower.name:
            continue
        bb = {k[len(f"{prefix}backbones.{kind}."):]: v for k, v in state.items()
              if k.startswith(f"{prefix}backbones.{kind}.")}
        head = {k[len(f"{prefix}heads.{kind}."):]: v for k, v in state.items()
                if k.startswith(f"{prefix}heads.{kind}.")}
        if not bb:
            raise InputError(f"{weights}: no weights for the {kind} backbone")
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        save_safetensors(folder / "backbone.safetensors", {k: v.contiguous() for k, v in bb.items()})
        save_safetensors(folder / "head.safetensors", {k: v.contiguous() for k, v in head.items()})
        hidden = head["net.0.weight"].shape[0]
        spec = {"format": 1, "kind": kind, "name": tower.name, "args": dict(tower.args),
                "out_dim": int(head["net.0.weight"].shape[1]),
                "head": {"in_dim": int(head["net.0.weight"].shape[1]), "hidden": int(hidden),
                         "out_dim": int(head["net.3.weight"].shape[0]), "normalize": cfg.model.normalize},
                "input": _input_spec(cfg, kind, _shard_fps(cfg)), "method": cfg.method,
                "source": str(run_dir)}
        write_spec(folder, spec)
        if torchscript and kind != "text":
            from pipeline.export.load import load_backbone
            net = load_backbone(folder)
            example = _example(spec)
            with atomic_open(folder / "backbone.ts", "wb") as fh:
                torch.jit.save(torch.jit.trace(net, example), fh)
        exported[kind] = str(folder)
    log.info("exported %s -> %s", ", ".join(exported), out)
    return exported


def _example(spec: dict) -> torch.Tensor:
    i = spec["input"]
    if spec["kind"] == "video":
        return torch.zeros(1, 3, i["frames"], i["size"], i["size"])
    frames = int(i["seconds"] * 1000 / i["hop_ms"]) + 1
    return torch.zeros(1, 1, i["n_mels"], frames)


def run(cfg: ExportConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "export_config.yaml")
    return export_run(Path(cfg.run_dir), out, cfg.torchscript)
