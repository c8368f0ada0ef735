"""What the engine trains: a method maps a batch to ``(loss, metrics)``.

Methods are registered by name; the engine builds one from the run's config and never
looks inside. Hooks let a method act between steps (SeLaVi re-labels the dataset on a
schedule); state a method keeps besides parameters (labels) goes through
``get_extra_state``/``set_extra_state`` so it rides in every checkpoint.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.io.atomic import save_safetensors


@dataclass
class StepContext:
    cfg: Any            # TrainConfig
    info: Any           # DistInfo
    step: int
    total_steps: int
    engine: Any         # the DeepSpeed engine (for methods that need a forward pass over data)


class Method(torch.nn.Module):
    """Base class: subclasses implement ``forward(batch) -> (loss, {name: float})``."""

    def on_step_start(self, ctx: StepContext) -> None:
        """Called before every micro-step on every rank; default: nothing."""

    def lr_scale(self, name: str) -> float:
        """Learning-rate factor of parameter ``name``; default: one lr for all."""
        return 1.0

    def export_weights(self, path: Path) -> Path:
        """All tensors of the state dict (extra state such as labels is not a tensor and
        lives in checkpoints) as safetensors."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in self.state_dict().items()
                   if isinstance(v, torch.Tensor)}
        save_safetensors(path, tensors)
        return path



def final_weights(run_dir: str | Path) -> Path:
    """Where a finished training run keeps its weights (the engine writes them last)."""
    return Path(run_dir) / "final" / "method.safetensors"

METHODS: dict[str, str] = {
    "gdt": "pipeline.train.methods.contrastive:GDTMethod",
    "simclr": "pipeline.train.methods.contrastive:SimCLRMethod",
    "clip": "pipeline.train.methods.contrastive:CLIPMethod",
    "selavi": "pipeline.train.methods.selavi:SeLaViMethod",
    "avloc": "pipeline.train.methods.avloc:AVLocMethod",
    "finetune": "pipeline.train.methods.finetune:Method",
}


def build_method(cfg) -> Method:
    try:
        spec = METHODS[cfg.method]
    except KeyError:
        raise ValueError(f"method: unknown method {cfg.method!r}; choose from {sorted(METHODS)}") from None
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)(cfg)
