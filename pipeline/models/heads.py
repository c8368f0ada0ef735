"""Projection head: Linear -> BN -> ReLU -> Linear, L2-normalised (GDT: 512 -> 512 -> 256).

The contrastive objectives compare embeddings by cosine similarity, so the head returns
unit vectors; the backbone features before it are what downstream evaluation uses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """[..., in_dim] -> [..., out_dim] (unit norm if ``normalize``); leading dims are flattened for BN."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int | None = None, normalize: bool = True):
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))
        self.normalize = normalize
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = self.net(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)
        return F.normalize(y, dim=-1) if self.normalize else y
