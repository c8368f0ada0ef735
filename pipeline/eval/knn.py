"""Cosine k-nearest-neighbour classification of embeddings (weighted vote, as in
instance-discrimination papers: each neighbour votes exp(similarity / T)), in chunks
(``neighbours.topk_cosine``) so the training memory can be memory-mapped and large."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.eval.neighbours import topk_cosine


def knn_predict(train_x, train_y, test_x, k: int, temperature: float = 0.07,
                train_groups: np.ndarray | None = None, test_groups: np.ndarray | None = None) -> torch.Tensor:
    """Predicted labels of ``test_x`` from its ``k`` most cosine-similar training rows;
    a training row of the query's own group (its video) never votes."""
    train_y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    n_cls = int(train_y.max()) + 1
    sims, idx = topk_cosine(test_x, train_x, k, test_groups, train_groups)
    valid = idx >= 0
    weight = torch.where(valid, (sims / temperature).exp(), torch.zeros(()))
    votes = torch.zeros(len(idx), n_cls, dtype=weight.dtype)
    votes.scatter_add_(1, train_y[idx.clamp(min=0)], weight)
    return votes.argmax(1)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int, train_groups=None, test_groups=None) -> float:
    pred = knn_predict(train_x, train_y, test_x, k, train_groups=train_groups, test_groups=test_groups)
    return float((pred == torch.as_tensor(np.asarray(test_y))).float().mean())
