"""Stand-ins for the published checkpoints: every tensor of an official layout (names,
shapes and dtypes from a fixture) filled from a seed, wrapped the way the official
training scripts save it, and the fixed inputs the parity outputs were computed on.

Used by ``test_import.py`` and by ``make_fixtures/import_checkpoints.py`` (which fills
the official model with the same numbers), so both sides see identical weights without
a multi-megabyte weights file in the repository: the fill of a tensor depends only on its
name, shape and dtype.
"""
from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
DTYPES = {"float32": torch.float32, "int64": torch.int64}

# the fixed inputs: 2 clips of 8 frames at 64 px; 1 s of audio is 99 frames in both repos
VIDEO_SHAPE = (2, 3, 8, 64, 64)
AUDIO_SHAPE = {"gdt": (2, 1, 40, 99), "selavi": (2, 1, 257, 99)}


def fill(name: str, shape: list[int], dtype: str) -> torch.Tensor:
    """A deterministic tensor for one state_dict entry (seeded by its name): He-scaled
    weights, BN scales in [0.5, 1.5), positive running variances, small biases."""
    if dtype == "int64":  # num_batches_tracked
        return torch.full(shape, 100, dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=g)
    if leaf in ("running_mean", "bias"):
        return 0.1 * torch.randn(shape, generator=g)
    if len(shape) == 1:  # a norm layer's scale
        return 0.5 + torch.rand(shape, generator=g)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)


def state_dict(entries: list, prefix: str = "") -> dict[str, torch.Tensor]:
    """``entries`` = [[name, shape, dtype], ...] (a layout fixture's "tensors")."""
    return {prefix + name: fill(name, shape, dtype) for name, shape, dtype in entries}


def inputs(audio: str | None) -> dict[str, torch.Tensor]:
    """The fixed video clip batch and (for "gdt" / "selavi") the spectrogram batch."""
    out = {"video": torch.randn(VIDEO_SHAPE, generator=torch.Generator().manual_seed(1))}
    if audio:
        out["audio"] = torch.randn(AUDIO_SHAPE[audio], generator=torch.Generator().manual_seed(2))
    return out


def layout(name: str) -> dict:
    """A layout fixture: ``{"tensors": [[name, shape, dtype], ...], ...}``."""
    return json.loads((FIXTURES / f"import_{name}_keys.json").read_text())


def save_official(layout_name: str, path: Path, legacy: bool = False) -> dict[str, torch.Tensor]:
    """Write a checkpoint as the official training code saves it and return its weights.

    GDT's ``save_checkpoint``: {model (no prefix: it saves ``model.module``), optimizer,
    epoch, args (an ``argparse.Namespace``)}; SeLaVi's ``main.py``: {epoch, dist, model
    (``module.``-prefixed: it saves the DistributedDataParallel wrapper), optimizer,
    selflabels}. ``legacy`` writes PyTorch's pre-1.6 format (the published GDT files
    date from PyTorch 1.3). The learning-rate scheduler's state is left out: GDT's holds
    a pickled scheduler object that no weights-only reader accepts."""
    spec = layout(layout_name)
    weights = state_dict(spec["tensors"])
    optim = {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-5,
                                            "params": list(range(len(weights)))}]}
    if layout_name.startswith("selavi"):
        ckpt = {"epoch": 201, "dist": None, "model": {"module." + k: v for k, v in weights.items()},
                "optimizer": optim, "selflabels": torch.zeros(16, 10, dtype=torch.long)}
    else:
        ckpt = {"model": weights, "optimizer": optim, "epoch": 201,
                "args": argparse.Namespace(model="av_gdt", hypothesis=8, use_mlp=True)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return weights
