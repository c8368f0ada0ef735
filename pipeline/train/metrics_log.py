"""Training metrics: JSON lines (``metrics.jsonl``) and TensorBoard, on rank 0.

A run starts its log at the step it starts from: rows past it (written between the
checkpoint a run resumes from and the moment the previous attempt died) are dropped, so
a resumed run's log holds each step once, like an uninterrupted run's.

This module is the log's one writer (``MetricsLog``) and reader (``read_metrics``):
missing, one behaviour: ``InputError`` naming the path (``has_metrics`` for callers that
look through a run folder for whichever runs trained).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist

from pipeline.errors import InputError
from pipeline.io.atomic import write_text
from pipeline.utils.metrics import JsonlWriter, read_jsonl

METRICS = "metrics.jsonl"


def metrics_path(run: str | Path) -> Path:
    """The metrics log of a training run folder."""
    return Path(run) / METRICS


def has_metrics(run: str | Path) -> bool:
    return metrics_path(run).is_file()


def read_metrics(run: str | Path) -> list[dict]:
    """The rows of a run's log (a torn last line from a killed writer is left out);
    ``InputError`` naming the path when the run has none."""
    path = metrics_path(run)
    if not path.is_file():
        raise InputError(f"{path}: no {METRICS} (not a training run folder, or it logged nothing)")
    return read_jsonl(path)


def _mean_over_ranks(value: float) -> float:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / dist.get_world_size()
    return value


def truncate_jsonl(path: Path, step: int) -> None:
    """Keep the rows of steps <= ``step`` (a torn last line goes too), atomically."""
    if path.exists():
        rows = [r for r in read_jsonl(path) if isinstance(r.get("step"), int) and r["step"] <= step]
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


class MetricsLog:
    def __init__(self, out: Path, enabled: bool, tensorboard: bool, step: int = 0):
        """``step``: the step the run starts from (0, or the resumed checkpoint's)."""
        self.enabled = enabled
        if enabled:
            truncate_jsonl(metrics_path(out), step)
        self.jsonl = JsonlWriter(metrics_path(out), enabled=enabled)
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            # purge_step: TensorBoard hides the dead attempt's events past the resumed step
            self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=step + 1 if step else None)

    def log_step(self, step: int, loss: torch.Tensor, parts: dict, engine, window: dict,
                 world_size: int, skipped_total: int, bar) -> None:
        """Collective (every rank calls it): loss and parts are averaged over ranks."""
        seconds = window["data"] + window["compute"]
        row = {"step": step, "loss": _mean_over_ranks(float(loss.detach().float())),
               "lr": engine.get_lr()[0],
               "clips_per_s": window["clips"] * world_size / max(seconds, 1e-9),
               "data_wait_frac": window["data"] / max(seconds, 1e-9),
               "skipped": skipped_total}
        for k, v in parts.items():
            row[k] = _mean_over_ranks(float(v))
        if not self.enabled:
            return
        self.jsonl.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step":
                    self.tb.add_scalar(f"train/{k}", v, step)
        bar.set_postfix(loss=f"{row['loss']:.3f}", clips_s=f"{row['clips_per_s']:.0f}")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
