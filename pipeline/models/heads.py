"""Projection head: Linear -> BN -> ReLU -> Linear, L2-normalised (GDT: 512 -> 512 -> 256).

The contrastive objectives compare embeddings by cosine similarity, so the head returns
unit vectors; the backbone features before it are what downstream evaluation uses.

``dropout`` > 0 adds the official GDT head's Dropout before each Linear (p = 0.3 there),
active in training only. The dropouts are applied in ``forward`` rather than placed in
``net``, so the layer indices of ``net`` (and every checkpoint's key names) are the same
with and without them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """[..., in_dim] -> [..., out_dim] (unit norm if ``normalize``); leading dims are flattened for BN."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int | None = None, normalize: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {dropout}")
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))
        self.normalize = normalize
        self.out_dim = out_dim
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = x.reshape(-1, x.shape[-1])
        if self.dropout > 0:  # the official order: Dropout, Linear, BN, ReLU, Dropout, Linear
            y = F.dropout(y, self.dropout, self.training)
            y = self.net[2](self.net[1](self.net[0](y)))
            y = self.net[3](F.dropout(y, self.dropout, self.training))
        else:
            y = self.net(y)
        y = y.reshape(*lead, -1)
        return F.normalize(y, dim=-1) if self.normalize else y
