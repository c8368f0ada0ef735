"""Checkpoints: DeepSpeed's model/optimizer/scheduler states plus, per rank, the loader
position and RNG states; a ``COMPLETE`` manifest written last makes a checkpoint usable.

The manifest lists every file of the checkpoint with its size and SHA-256, taken after
the files were fsynced. A run killed while saving leaves a folder without it, which
``resume=auto`` ignores; a file damaged later (a full disk, a truncated copy) no longer
matches it. Resuming checks the folder's owner and the manifest before anything is
unpickled (DeepSpeed's files are pickles), then falls back to the newest older
checkpoint that verifies and loads, so a requeued job never crashes on the same bad
file forever.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

from pipeline.errors import InputError
from pipeline.io.atomic import fsync_dir, write_json
from pipeline.io.trust import require_own_folder
from pipeline.train.distributed import any_rank, barrier

log = logging.getLogger(__name__)
MARKER = "COMPLETE"


def tag_for(step: int) -> str:
    return f"step_{step:08d}"


def complete_tags(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.glob("step_*") if (p / MARKER).exists())


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != MARKER)


def _digest(path: Path, sync: bool) -> dict:
    """Size and SHA-256 of a file; ``sync``: fsync it first (its writer may be another rank)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if sync:
            os.fsync(fh.fileno())
        while block := fh.read(1 << 20):
            h.update(block)
        return {"size": fh.tell(), "sha256": h.hexdigest()}


def _digests(folder: Path, names: list[str], sync: bool = False) -> dict[str, dict]:
    """Digests of ``names``: each rank reads a share, every rank gets them all."""
    group = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    rank, world = (dist.get_rank(), dist.get_world_size()) if group else (0, 1)
    mine = {n: _digest(folder / n, sync) for n in names[rank::world]}
    if not group:
        return mine
    parts: list = [None] * world
    dist.all_gather_object(parts, mine)
    return {k: v for part in parts for k, v in part.items()}


def verify(folder: Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot be used, or None (collective under torchrun).

    Checks, before any file is unpickled: the folder is the user's own, the manifest
    names exactly the files present, and their sizes and SHA-256 match it."""
    try:
        require_own_folder(folder, "a checkpoint")
        manifest = json.loads((folder / MARKER).read_text())
    except (InputError, OSError, ValueError) as err:
        return str(err)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"{folder / MARKER}: no file manifest (written by an older version?)"
    present, listed = set(_files(folder)), set(manifest["files"])
    if present != listed:
        extra, missing = sorted(present - listed), sorted(listed - present)
        return f"{folder}: files differ from its manifest (missing {missing}, unexpected {extra})"
    bad = [n for n in sorted(listed) if os.path.getsize(folder / n) != manifest["files"][n]["size"]]
    if not bad:
        found = _digests(folder, sorted(listed))
        bad = [n for n in sorted(listed) if found[n] != manifest["files"][n]]
    return f"{folder}: {', '.join(bad)} damaged (size or SHA-256 differs from the manifest)" if bad else None


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
    folder = root / tag
    if rank == 0 and folder.exists():  # an attempt that died saving this step, or a replaced one
        shutil.rmtree(folder)
    barrier()
    engine.save_checkpoint(str(root), tag=tag, client_state={"step": step})
    torch.save(rank_state(loader_state, step, engine.module), folder / f"rank_{rank:05d}.pt")
    barrier()
    names = _files(folder)
    files = _digests(folder, names, sync=True)
    if rank == 0:
        fsync_dir(folder)
        write_json(folder / MARKER, {"step": step, "files": files})
        for old in complete_tags(root)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(root / old, ignore_errors=True)
    barrier()
    log.info("checkpoint %s saved", folder)
    return folder


def candidates(root: Path, resume: str) -> list[Path]:
    """Checkpoint folders to try, best first: ``auto``: the complete ones under ``root``,
    newest first; ``none``: nothing; otherwise the one folder ``resume`` names."""
    if resume == "none":
        return []
    if resume == "auto":
        return [root / t for t in reversed(complete_tags(root))]
    path = Path(resume)
    if not (path / MARKER).exists():
        raise InputError(f"ckpt.resume={resume}: not a complete checkpoint folder (no {MARKER} marker)")
    return [path]


def restore(engine, root: Path, resume: str, rank: int) -> dict | None:
    """Load the best usable checkpoint (see ``candidates``); its rank state, with ``path``
    added, or None to start fresh. A checkpoint that fails to verify or load is logged and
    the next older one tried; InputError when checkpoints exist but none is usable."""
    tried = candidates(root, resume)
    problems = []
    for folder in tried:
        why = verify(folder)
        if why is None:
            try:
                state = _load(engine, folder, rank)
            except Exception as err:  # a format or world-size mismatch: the same on every rank
                state, why = None, f"{folder}: cannot be loaded ({type(err).__name__}: {err})"
            if any_rank(state is None):
                why = why or f"{folder}: another rank could not load it"
            else:
                return {**state, "path": str(folder)}
        log.warning("checkpoint %s skipped: %s", folder.name, why)
        problems.append(why)
    if tried:
        raise InputError(f"ckpt.resume={resume}: no usable checkpoint: " + "; ".join(problems)
                         + " (ckpt.resume=none starts over)")
    return None


def _load(engine, folder: Path, rank: int) -> dict:
    """Restore engine states; return this rank's loader state and step, RNGs restored."""
    path = folder / f"rank_{rank:05d}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint has no state for rank {rank} "
                                "(was it written with a different world size?)")
    state = torch.load(path, weights_only=True)
    loaded, _ = engine.load_checkpoint(str(folder.parent), tag=folder.name)
    if loaded is None:
        raise FileNotFoundError("DeepSpeed found no checkpoint to load")
    buffers = dict(engine.module.named_buffers())
    with torch.no_grad():
        for k, v in state["buffers"].items():
            buffers[k].copy_(v)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"])
    return state
