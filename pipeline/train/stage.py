"""The ``train`` stage (command line and ``jobs/``): pretrain with DeepSpeed, one engine
for every method (``pipeline.train.engine``); ``jobs/`` adds the stop hook of a
pre-empted SLURM job."""
from __future__ import annotations

from pipeline.train.config import TrainConfig
from pipeline.train.engine import train


def run(cfg: TrainConfig) -> dict:
    """Train without a stop hook: ``{"status", "step", "checkpoint", "out"}``."""
    return train(cfg)
