"""Evaluation metrics on cases whose answers are known by construction."""
import numpy as np
import pytest
import torch

from pipeline.eval.clustering import cluster_accuracy, clustering_metrics
from pipeline.eval.knn import knn_accuracy, knn_predict
from pipeline.eval.linear_probe import linear_probe_accuracy
from pipeline.eval.retrieval import gt_ranks, retrieval_metrics


def blobs(n_per, k, dim=16, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g)
    y = torch.arange(k).repeat_interleave(n_per)
    return centres[y] + noise * torch.randn(len(y), dim, generator=g), y


def test_knn_separable_and_random():
    x, y = blobs(20, 5)
    xt, yt = blobs(10, 5, seed=0)
    assert knn_accuracy(x, y, xt, yt, k=1) == 1.0
    assert knn_accuracy(x, y, xt, yt, k=20) == 1.0
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert knn_accuracy(x, shuffled, xt, yt, k=20) < 0.6
    assert knn_predict(x, y, x[:3], k=1).tolist() == y[:3].tolist()


def test_linear_probe():
    x, y = blobs(30, 4, noise=0.5)
    assert linear_probe_accuracy(x[::2], y[::2], x[1::2], y[1::2]) > 0.95


def unit(deg):
    r = torch.deg2rad(torch.tensor(deg, dtype=torch.float64))
    return torch.stack([r.cos(), r.sin()], dim=1)


def test_retrieval_definitions():
    # candidates at 0, 10, 20, 30 degrees; query i's truth is candidate i
    c = unit([0.0, 10.0, 20.0, 30.0])
    q = unit([0.0, 10.0, 2.0, 0.0])
    assert gt_ranks(q, c).tolist() == [0, 0, 2, 3]
    m = retrieval_metrics(q, c, "a2v")
    assert m["r_at_1_a2v"] == 50.0 and m["r_at_5_a2v"] == 100.0
    assert m["medr_a2v"] == 2  # median of (0, 0, 2, 3) = 1.0 -> floor + 1


def test_ranks_match_brute_force():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    qn, cn = q / q.norm(dim=1, keepdim=True), c / c.norm(dim=1, keepdim=True)
    sim = (qn @ cn.T).numpy()
    expected = [int((sim[i] > sim[i, i]).sum()) for i in range(50)]
    assert gt_ranks(q, c).tolist() == expected
    m = retrieval_metrics(q, c, "v2a")
    assert m["r_at_10_v2a"] == 100.0 * np.mean(np.array(expected) < 10)
    assert m["medr_v2a"] == int(np.floor(np.median(expected))) + 1


def test_clustering_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    perm = np.array([5, 5, 3, 3, 9, 9])
    m = clustering_metrics(labels, perm)
    assert m == pytest.approx({"nmi": 1.0, "ari": 1.0, "cluster_acc": 1.0})
    assert cluster_accuracy(labels, np.array([1, 1, 1, 1, 2, 2])) == pytest.approx(4 / 6)
    assert clustering_metrics(labels, np.zeros(6))["nmi"] == pytest.approx(0.0)
