"""What the engine trains: a method maps a batch to ``(loss, metrics)``.

Methods are registered by name (``pipeline.train.methods.METHODS``); the engine builds one
from the run's config and never looks inside. A method is built from its own config
section and the ``SharedSettings`` every method may read, not from the whole run config,
so a method cannot come to depend on another method's settings. Hooks let a method act
between steps (SeLaVi re-labels the dataset on a schedule); state a method keeps besides
parameters (labels) goes through ``get_extra_state``/``set_extra_state`` so it rides in
every checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pipeline.io.atomic import save_safetensors

from pipeline.loader.loader import LoaderConfig
from pipeline.models.av_model import ModelConfig
from pipeline.train.distributed import DistInfo

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine


@dataclass(frozen=True)
class SharedSettings:
    """The run settings a method may read besides its own section."""
    model: ModelConfig  # backbones and heads
    loader: LoaderConfig  # the training data (SeLaVi re-reads the dataset with it)
    steps: int  # optimizer steps of the run (for schedules)
    out: str = ""  # the run folder (SeLaVi's labelling pass keeps its scratch files there)


@dataclass
class StepContext:
    """What ``on_step_start`` sees: where this process is, and which step is next."""
    info: DistInfo
    step: int
    total_steps: int
    engine: DeepSpeedEngine | None  # None outside the engine (e.g. the cluster stage)


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
