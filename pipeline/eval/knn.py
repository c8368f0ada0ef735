"""Cosine k-nearest-neighbour classification of embeddings (weighted vote, as in
instance-discrimination papers: each neighbour votes exp(similarity / T))."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, k: int,
                temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Predicted labels of ``test_x`` from its ``k`` most cosine-similar training rows."""
    train_x = F.normalize(train_x.float(), dim=1)
    test_x = F.normalize(test_x.float(), dim=1)
    n_cls = int(train_y.max()) + 1
    k = min(k, len(train_x))
    preds = []
    for i in range(0, len(test_x), chunk):
        sim = test_x[i:i + chunk] @ train_x.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(top), n_cls)
        votes.scatter_add_(1, train_y[idx], (top / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(train_x, train_y, test_x, test_y, k: int) -> float:
    return float((knn_predict(train_x, train_y, test_x, k) == test_y).float().mean())
