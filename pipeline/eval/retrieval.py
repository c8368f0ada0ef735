"""Retrieval metrics, computed in chunks of rows (memory-mapped features stay on disk).

Cross-modal (image-text literature): the rank of the ground truth (0-based) among all
candidates; R@K = 100 * #(rank < K) / N; median rank = floor(median(rank)) + 1.
Video retrieval (CoCLR / VCOP protocol): each test video queries the training videos; a
hit at K when any of the top K shares the query's class.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pipeline.eval.neighbours import CHUNK, topk_cosine, unit_rows

CLASS_KS = (1, 5, 10, 20, 50)


def gt_ranks(queries, candidates, chunk: int = CHUNK) -> torch.Tensor:
    """Row i's ground truth is candidate i; rank = number of candidates scored higher."""
    n = len(queries)
    ranks = torch.zeros(n, dtype=torch.long)
    for qs in range(0, n, chunk):
        q = unit_rows(queries, qs, qs + chunk)
        gt = (q * unit_rows(candidates, qs, qs + chunk)).sum(1, keepdim=True)
        rows = torch.arange(qs, qs + len(q))[:, None]
        for cs in range(0, len(candidates), chunk):
            higher = q @ unit_rows(candidates, cs, cs + chunk).T > gt
            cols = torch.arange(cs, cs + higher.shape[1])[None, :]
            ranks[qs:qs + len(q)] += (higher & (cols != rows)).sum(1)  # never the truth itself
    return ranks


def retrieval_metrics(queries, candidates, suffix: str) -> dict:
    ranks = gt_ranks(queries, candidates).double()
    out = {f"r_at_{k}_{suffix}": float(100.0 * (ranks < k).double().mean()) for k in (1, 5, 10)}
    out[f"medr_{suffix}"] = int(math.floor(float(ranks.quantile(0.5)))) + 1  # median of an even count: mean of the middle two
    return out


def class_retrieval(test_x, test_y, train_x, train_y, ks=CLASS_KS,
                    test_groups: np.ndarray | None = None, train_groups: np.ndarray | None = None) -> dict:
    """R@K (percent) of test rows querying training rows: a hit when any of the K most
    cosine-similar training rows has the query's label (rows of the query's own group,
    its video, are never retrieved)."""
    ks = [k for k in ks if k <= len(train_x)]
    _, idx = topk_cosine(test_x, train_x, max(ks), test_groups, train_groups)
    train_y = torch.as_tensor(np.asarray(train_y))
    same = (train_y[idx.clamp(min=0)] == torch.as_tensor(np.asarray(test_y))[:, None]) & (idx >= 0)
    return {f"r_at_{k}": float(100.0 * same[:, :k].any(1).double().mean()) for k in ks}
