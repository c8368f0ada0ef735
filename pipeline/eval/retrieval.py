"""Cross-modal retrieval as defined in the image-text retrieval literature: the rank of
the ground truth (0-based) among all candidates; R@K = 100 * #(rank < K) / N; median rank
= floor(median(rank)) + 1."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gt_ranks(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Row i's ground truth is candidate i; rank = number of candidates scored higher."""
    q = F.normalize(queries.float(), dim=1)
    c = F.normalize(candidates.float(), dim=1)
    sim = q @ c.T
    gt = sim.diagonal().unsqueeze(1)
    return (sim > gt).sum(dim=1)


def retrieval_metrics(queries: torch.Tensor, candidates: torch.Tensor, suffix: str) -> dict:
    ranks = gt_ranks(queries, candidates).double()
    out = {f"r_at_{k}_{suffix}": float(100.0 * (ranks < k).double().mean()) for k in (1, 5, 10)}
    out[f"medr_{suffix}"] = int(math.floor(float(ranks.quantile(0.5)))) + 1  # median of an even count: mean of the middle two
    return out
