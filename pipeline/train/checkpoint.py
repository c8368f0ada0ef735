"""Checkpoints: DeepSpeed's model/optimizer/scheduler states plus, per rank, the loader
position and RNG states; a ``COMPLETE`` marker written last makes a checkpoint usable.

A run killed while saving leaves a folder without the marker, which ``resume=auto``
ignores, so resuming never reads half a checkpoint.
"""
from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import torch

from pipeline.train.distributed import barrier

log = logging.getLogger(__name__)
MARKER = "COMPLETE"


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def complete_tags(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.glob("step_*") if (p / MARKER).exists())


def resolve_resume(root: Path, resume: str) -> tuple[Path, str] | None:
    """``auto``: newest complete checkpoint under ``root`` (None if there is none);
    ``none``: start fresh; otherwise a path to a checkpoint folder."""
    if resume == "none":
        return None
    if resume == "auto":
        tags = complete_tags(root)
        return (root, tags[-1]) if tags else None
    path = Path(resume)
    if not (path / MARKER).exists():
        raise FileNotFoundError(f"ckpt.resume={resume}: not a complete checkpoint folder "
                                f"(no {MARKER} marker)")
    return path.parent, path.name


def rank_state(loader_state: dict, step: int, module: torch.nn.Module) -> dict:
    """What differs between ranks: loader position, RNGs and the buffers (BatchNorm
    statistics are per rank unless SyncBatchNorm runs; DeepSpeed saves rank 0's only)."""
    state = {"step": step, "loader": loader_state, "torch_rng": torch.get_rng_state(),
             "python_rng": random.getstate(),
             "buffers": {k: v.detach().cpu().clone() for k, v in module.named_buffers()
                         if v.is_floating_point()}}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def save(engine, root: Path, step: int, loader_state: dict, rank: int, keep_last: int) -> Path:
    tag = tag_for(step)
    engine.save_checkpoint(str(root), tag=tag, client_state={"step": step})
    torch.save(rank_state(loader_state, step, engine.module), root / tag / f"rank_{rank:05d}.pt")
    barrier()
    if rank == 0:
        (root / tag / MARKER).write_text(str(step))
        for old in complete_tags(root)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(root / old, ignore_errors=True)
    barrier()
    log.info("checkpoint %s saved", root / tag)
    return root / tag


def load(engine, root: Path, tag: str, rank: int) -> dict:
    """Restore engine states; return this rank's loader state and step, RNGs restored."""
    engine.load_checkpoint(str(root), tag=tag)
    path = root / tag / f"rank_{rank:05d}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint has no state for rank {rank} "
                                "(was it written with a different world size?)")
    state = torch.load(path, weights_only=True)
    buffers = dict(engine.module.named_buffers())
    with torch.no_grad():
        for k, v in state["buffers"].items():
            buffers[k].copy_(v)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"])
    return state
