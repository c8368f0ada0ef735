"""SimCLR's NT-Xent within one modality over two augmented views, negatives from every rank.

For each of the 2N rows (N samples on all ranks, 2 views) the positive is the other view
of the same sample and the negatives are the other 2N - 2 embeddings; the loss is the
mean cross-entropy over the 2N rows (= pytorch-metric-learning's NTXentLoss with labels
cat(arange(N), arange(N))). Each rank scores its 2n local rows against the gathered 2N
columns; the world-size scaling contract is the one of ``nce.py``: gradients must be
averaged over ranks by the engine (DeepSpeed / DDP default).

Input: ``out[modality]`` [n, 2, D], the two views along axis 1 (loader: clip.copies=2,
clip.positions=1, clip.reverse=false).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.objectives.gather import gather_sizes, gather_with_grad, world
from pipeline.objectives.nce import Temperature, TemperatureConfig, prepare


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: torch.Tensor | float,
            normalize: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NT-Xent of two row-aligned views z1, z2 [n, D] over the global batch."""
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"nt_xent: need two [n, D] views of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = prepare(z1, normalize), prepare(z2, normalize)
    n = z1.shape[0]
    both, offset = gather_with_grad(torch.stack([z1, z2], dim=1), gather_sizes(n, z1.device))
    total, ws = both.shape[0], world()[1]
    keys = torch.cat([both[:, 0], both[:, 1]])  # [2N, D]: all first views, then all second views
    logits = torch.cat([z1, z2]) @ keys.t() / temperature  # [2n, 2N]
    idx = torch.arange(n, device=z1.device) + offset
    self_col = torch.cat([idx, idx + total])
    pos_col = torch.cat([idx + total, idx])
    is_self = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, self_col[:, None], True)
    logits = logits.masked_fill(is_self, float("-inf"))
    loss = F.cross_entropy(logits, pos_col, reduction="sum") * (ws / (2 * total))
    with torch.no_grad():
        metrics = {"acc": (logits.argmax(1) == pos_col).float().mean()}
    return loss, metrics


@dataclass
class SimCLRConfig:
    modality: str = field(default="video", metadata={"help": "embedding key whose two views are contrasted"})
    temperature: TemperatureConfig = field(default_factory=lambda: TemperatureConfig(value=0.1))
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings before the dot product"})


class SimCLR(nn.Module):
    """``forward(out)`` with ``out[modality]`` [n, 2, D] -> (loss, metrics)."""

    def __init__(self, cfg: SimCLRConfig):
        super().__init__()
        self.cfg = cfg
        self.temperature = Temperature(cfg.temperature)

    def forward(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mod = self.cfg.modality
        if mod not in out:
            raise ValueError(f"simclr: needs {mod!r} embeddings; the model returned {sorted(out)}")
        z = out[mod]
        if z.dim() != 3 or z.shape[1] != 2:
            raise ValueError(f"simclr: {mod!r} embeddings must be [B, 2, D] (two views; loader clip.copies=2), "
                             f"got {tuple(z.shape)}")
        t = self.temperature()
        loss, m = nt_xent(z[:, 0], z[:, 1], t, self.cfg.normalize)
        return loss, {"acc": m["acc"], "temperature": torch.as_tensor(t).detach().clone()}


Config, Objective = SimCLRConfig, SimCLR
