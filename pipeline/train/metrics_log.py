"""Training metrics: JSON lines (``metrics.jsonl``) and TensorBoard, on rank 0."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from pipeline.utils.metrics import JsonlWriter


def _mean_over_ranks(value: float) -> float:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / dist.get_world_size()
    return value


class MetricsLog:
    def __init__(self, out: Path, enabled: bool, tensorboard: bool):
        self.enabled = enabled
        self.jsonl = JsonlWriter(out / "metrics.jsonl", enabled=enabled)
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(out / "tensorboard"))

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
