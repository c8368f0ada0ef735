"""Evaluation metrics on cases whose answers are known by construction."""
import numpy as np
import pytest
import torch

from pipeline.eval.clustering import cluster_accuracy, clustering_metrics, kmeans_labels, purity, selavi_metrics
from pipeline.eval.knn import knn_accuracy, knn_predict
from pipeline.eval.linear_probe import held_out, linear_probe
from pipeline.eval.neighbours import topk_cosine
from pipeline.eval.retrieval import class_retrieval, gt_ranks, retrieval_metrics


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


def test_knn_never_counts_the_query_itself():
    """Scored against itself (no held-out split), a clip with a unique label is right only
    if it is its own neighbour: with groups it never is."""
    x, y = blobs(1, 6)  # one clip per class
    groups = np.arange(6)
    assert knn_accuracy(x, y, x, y, k=1) == 1.0  # the defect: each clip finds itself
    assert knn_accuracy(x, y, x, y, k=1, train_groups=groups, test_groups=groups) == 0.0


def test_topk_in_chunks_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    q, c = torch.randn(37, 8, generator=g), torch.randn(53, 8, generator=g)
    sims, idx = topk_cosine(q.numpy(), c.numpy(), 7, chunk=10)
    full = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(c, dim=1).T
    want_s, want_i = full.topk(7, dim=1)
    assert torch.allclose(sims, want_s, atol=1e-5) and (idx == want_i).all()
    qg, cg = np.arange(37) % 5, np.arange(53) % 5
    _, idx = topk_cosine(q.numpy(), c.numpy(), 7, qg, cg, chunk=10)
    assert (cg[idx.numpy()] != qg[:, None]).all()


def test_linear_probe_chooses_decay_on_training_rows_only():
    x, y = blobs(30, 4, noise=0.5)
    res = linear_probe(x[::2].numpy(), y[::2].numpy(), x[1::2].numpy(), y[1::2].numpy())
    assert res["top1"] > 0.95 and res["weight_decay"] in (1e-4, 1e-3, 1e-2, 1e-1)
    # labels of the test rows shuffled: the choice (made on training rows) cannot change
    perm = np.random.default_rng(0).permutation(60)
    again = linear_probe(x[::2].numpy(), y[::2].numpy(), x[1::2].numpy(), y[1::2].numpy()[perm])
    assert again["weight_decay"] == res["weight_decay"] and again["top1"] < 0.6


def test_held_out_split_keeps_videos_whole():
    y = np.repeat(np.arange(4), 10)
    groups = np.repeat(np.arange(20), 2)  # two clips per video
    fit, val = held_out(y, groups)
    assert not set(groups[fit]) & set(groups[val])
    assert 0.1 <= len(val) / len(y) <= 0.3 and set(y[val]) == {0, 1, 2, 3}


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


def test_class_retrieval_recall():
    # 1-D: train videos at 0..9 with labels i // 2; query at 0.1 (label 0): top-1 is train 0 (label 0)
    train = np.stack([np.cos(np.arange(10) / 10), np.sin(np.arange(10) / 10)], 1)
    train_y = np.arange(10) // 2
    test = np.stack([np.cos([0.01, 0.41]), np.sin([0.01, 0.41])], 1)
    test_y = np.array([0, 4])  # the second query's nearest are labels 2, 2, 1, 3, ...: label 4 at rank 5+
    m = class_retrieval(test, test_y, train, train_y, ks=(1, 5, 10))
    assert m["r_at_1"] == 50.0 and m["r_at_10"] == 100.0


def test_kmeans_streams_large_sets(monkeypatch):
    from pipeline.eval import clustering
    x, y = blobs(40, 3, noise=0.05)
    full = kmeans_labels(x.numpy(), 3)
    monkeypatch.setattr(clustering, "IN_MEMORY_ROWS", 10)
    monkeypatch.setattr(clustering, "CHUNK", 32)
    streamed = kmeans_labels(x.numpy(), 3)
    assert clustering_metrics(y.numpy(), full)["nmi"] == pytest.approx(1.0)
    assert clustering_metrics(y.numpy(), streamed)["nmi"] == pytest.approx(1.0)


def test_clustering_metrics():
    labels = np.array([0, 0, 1, 1, 2, 2])
    perm = np.array([5, 5, 3, 3, 9, 9])
    m = clustering_metrics(labels, perm)
    assert m == pytest.approx({"nmi": 1.0, "ari": 1.0, "cluster_acc": 1.0})
    assert cluster_accuracy(labels, np.array([1, 1, 1, 1, 2, 2])) == pytest.approx(4 / 6)
    assert clustering_metrics(labels, np.zeros(6))["nmi"] == pytest.approx(0.0)
    assert purity(labels, np.array([1, 1, 1, 1, 2, 2])) == pytest.approx(4 / 6)
    assert selavi_metrics(labels, perm)["ami"] == pytest.approx(1.0)
