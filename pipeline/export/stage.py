"""``python -m pipeline export RUN_DIR --out DIR``: each backbone of a training run as
safetensors plus a JSON config (architecture and the input it expects), and a
``manifest.json`` (run id, every file's size and SHA-256) written last. The export is
built beside ``DIR`` and swapped in whole (``write_export``): an interrupted export
leaves the previous one, or none, never a mix."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.config import MISSING, load_config, to_yaml
from pipeline.errors import InputError
from pipeline.export.manifest import NAME, sha256_file, write_manifest
from pipeline.models.export_spec import write_spec
from pipeline.io.atomic import atomic_open, save_safetensors, write_text
from pipeline.io.atomic_dir import build_aside
from pipeline.io.folder_lock import hold
from pipeline.loader.audio_features import feature_shape
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights

log = logging.getLogger(__name__)

FEATURES_TEXT = {  # the audio input spec's description, per loader.audio.features
    "logmel": "torchaudio MelSpectrogram(power) -> AmplitudeToDB(top_db=80) -> per-clip standardisation",
    "gdt": "GDT's: python_speech_features logfbank of int16 samples (n_fft 1024) -> (x - 1.93) / 17.89",
    "selavi": "SeLaVi's: python_speech_features logfbank of int16 samples (n_fft 1024), not normalised",
}


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
                "hop_ms": a.hop_ms, "layout": "B,1,n_mels,frames", "audio_features": a.features,
                "frames": feature_shape(a)[1], "features": FEATURES_TEXT[a.features]}
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


@dataclass
class ExportPart:
    """One modality of an export: ``config.json`` content and its weight files (an
    imported checkpoint may come without a projection head: ``head`` None)."""
    kind: str
    spec: dict
    backbone: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor] | None


def is_export(folder: Path) -> bool:
    """What ``write_export`` may replace: a folder of ours (an export, old or interrupted,
    or nothing), never a folder of other files someone pointed ``out=`` at."""
    ours = {"video", "audio", "text", "export_config.yaml", "import_config.yaml", NAME}
    return folder.is_dir() and not folder.is_symlink() and {p.name for p in folder.iterdir()} <= ours


def write_export(out: str | os.PathLike, parts: list[ExportPart], run_id: str, source: str,
                 torchscript: bool = False, files: dict[str, str] | None = None) -> dict:
    """Write an export at ``out`` whole or not at all: every part, ``files`` (name -> text,
    e.g. the config that made it) and ``manifest.json`` (last) in a folder built beside
    ``out``, fsynced, then swapped in; an existing export there is replaced whole. Returns
    {kind: folder}. Any writer of exports (``export``, an import of foreign weights) goes
    through here, so ``eval``'s ``verify_export`` holds for all of them."""
    out = Path(out)
    with hold(out.parent, "export", name=f".{out.name}.lock", label=out):
        try:
            with build_aside(out, is_export) as tmp:
                for name, text in (files or {}).items():
                    write_text(tmp / name, text)
                for part in parts:
                    _write_part(tmp / part.kind, part, run_id, torchscript)
                write_manifest(tmp, run_id, source)
        except FileExistsError:
            raise InputError(f"out={out}: exists and holds files that are not an export; choose a new "
                             "or empty folder") from None
    exported = {p.kind: str(out / p.kind) for p in parts}
    log.info("exported %s -> %s", ", ".join(exported), out)
    return exported


def _write_part(folder: Path, part: ExportPart, run_id: str, torchscript: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(folder / "backbone.safetensors", {k: v.contiguous() for k, v in part.backbone.items()})
    if part.head is not None:
        save_safetensors(folder / "head.safetensors", {k: v.contiguous() for k, v in part.head.items()})
    spec = {**part.spec, "run_id": run_id}
    write_spec(folder, spec)
    if torchscript and part.kind != "text":
        from pipeline.models.load import load_backbone
        net = load_backbone(folder)
        with atomic_open(folder / "backbone.ts", "wb") as fh:
            torch.jit.save(torch.jit.trace(net, _example(spec)), fh)


def run_parts(run_dir: Path) -> tuple[list[ExportPart], str]:
    """The parts of a finished training run, and its id (SHA-256 of its final weights)."""
    cfg_path, weights = run_dir / "config.yaml", final_weights(run_dir)
    for p in (cfg_path, weights):
        if not p.exists():
            raise InputError(f"{p}: missing; is {run_dir} a finished training run?")
    cfg = load_config(TrainConfig, [cfg_path])
    state = load_file(weights)
    prefix = "model."
    parts = []
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
        hidden = head["net.0.weight"].shape[0]
        spec = {"format": 1, "kind": kind, "name": tower.name, "args": dict(tower.args),
                "out_dim": int(head["net.0.weight"].shape[1]),
                "head": {"in_dim": int(head["net.0.weight"].shape[1]), "hidden": int(hidden),
                         "out_dim": int(head["net.3.weight"].shape[0]), "normalize": cfg.model.normalize},
                "input": _input_spec(cfg, kind, _shard_fps(cfg)), "method": cfg.method,
                "source": str(run_dir)}
        parts.append(ExportPart(kind, spec, bb, head))
    return parts, sha256_file(weights)


def export_run(run_dir: Path, out: Path, torchscript: bool = False, files: dict[str, str] | None = None) -> dict:
    parts, run_id = run_parts(Path(run_dir))
    return write_export(out, parts, run_id, str(run_dir), torchscript, files)


def _example(spec: dict) -> torch.Tensor:
    i = spec["input"]
    if spec["kind"] == "video":
        return torch.zeros(1, 3, i["frames"], i["size"], i["size"])
    frames = i.get("frames", int(i["seconds"] * 1000 / i["hop_ms"]) + 1)  # exports before "frames": log-mel
    return torch.zeros(1, 1, i["n_mels"], frames)


def run(cfg: ExportConfig) -> dict:
    return export_run(Path(cfg.run_dir), Path(cfg.out), cfg.torchscript,
                      files={"export_config.yaml": to_yaml(cfg)})
