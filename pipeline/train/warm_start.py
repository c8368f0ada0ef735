"""Initialise a model from another run's weights (``init=RUN`` in a training config).

Why: stages build on each other (SeLaVi or a detector fine-tuned from GDT backbones, a
long run continued with a new method). Only tensors whose names start with the chosen
prefix and whose shapes match are copied, so heads that differ between methods keep
their fresh initialisation; nothing is unpickled (safetensors).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.errors import InputError
from pipeline.train.method import final_weights

log = logging.getLogger(__name__)


def weights_file(source: str) -> Path:
    """A run folder (its ``final/method.safetensors``) or a .safetensors file."""
    path = Path(source)
    if path.is_dir():
        path = final_weights(path)
    if not path.is_file():
        raise InputError(f"init={source}: no weights at {path} (give a finished run folder "
                         "or a .safetensors file)")
    return path


def warm_start(module: torch.nn.Module, source: str, prefix: str, as_prefix: str = "") -> int:
    """Copy the matching tensors of ``source`` into ``module``; returns how many. With
    ``as_prefix``, a tensor ``prefix + rest`` of ``source`` initialises ``as_prefix + rest``
    (another method names the same backbone differently)."""
    path = weights_file(source)
    theirs = load_file(str(path))
    if as_prefix:
        theirs = {as_prefix + k[len(prefix):]: v for k, v in theirs.items() if k.startswith(prefix)}
        prefix = as_prefix
    ours = module.state_dict()
    taken, skipped = {}, []
    for name, value in theirs.items():
        if not name.startswith(prefix) or name not in ours:
            continue
        if ours[name].shape != value.shape:
            skipped.append(f"{name} {tuple(value.shape)} != {tuple(ours[name].shape)}")
            continue
        taken[name] = value
    if not taken:
        raise InputError(f"init={source}: no tensor of {path} matches this model under "
                         f"prefix {prefix!r} (different architecture?)")
    module.load_state_dict(taken, strict=False)
    if skipped:
        log.warning("init: %d tensor(s) of %s differ in shape and were left fresh, e.g. %s",
                    len(skipped), path, skipped[0])
    log.info("init: %d tensors from %s", len(taken), path)
    return len(taken)
