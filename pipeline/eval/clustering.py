"""Clustering quality against labels: NMI, adjusted NMI and ARI (scikit-learn), accuracy
after Hungarian matching of the contingency matrix (scipy) and purity; and k-means on
L2-normalised features that may be memory-mapped (mini-batches when they are large)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.preprocessing import normalize

IN_MEMORY_ROWS = 200_000  # above this, k-means streams mini-batches from the (memory-mapped) rows
CHUNK = 8192


def hungarian_match(labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
    """cluster id -> label id maximising the number of agreeing samples."""
    lab_ids, lab_inv = np.unique(labels, return_inverse=True)
    clu_ids, clu_inv = np.unique(clusters, return_inverse=True)
    cont = contingency_matrix(lab_inv, clu_inv)  # labels x clusters
    rows, cols = linear_sum_assignment(-cont)
    return {int(clu_ids[c]): int(lab_ids[r]) for r, c in zip(rows, cols)}


def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    mapping = hungarian_match(labels, clusters)
    mapped = np.array([mapping.get(int(c), -1) for c in clusters])
    return float((mapped == labels).mean())


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Fraction of samples in their cluster's majority class."""
    cont = contingency_matrix(labels, clusters)
    return float(cont.max(axis=0).sum() / cont.sum())


def clustering_metrics(labels, clusters) -> dict:
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)),
            "cluster_acc": cluster_accuracy(labels, clusters)}


def selavi_metrics(labels, clusters) -> dict:
    """The set SeLaVi reports: NMI, adjusted NMI, ARI, Hungarian accuracy, purity."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    return {**clustering_metrics(labels, clusters),
            "ami": float(adjusted_mutual_info_score(labels, clusters)),
            "purity": purity(labels, clusters)}


def kmeans_labels(x: np.ndarray, k: int, seed: int = 0, epochs: int = 5) -> np.ndarray:
    """k-means cluster of each L2-normalised row: in memory (10 restarts) for up to
    IN_MEMORY_ROWS rows; above, mini-batch k-means started from k-means on a random
    sample (rows are sorted by key, often by class: no chunk is representative) and
    fed the chunks in a random order each epoch."""
    if len(x) <= IN_MEMORY_ROWS:
        return KMeans(k, n_init=10, random_state=seed).fit_predict(normalize(np.asarray(x, np.float32)))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(x), size=min(len(x), max(IN_MEMORY_ROWS // 4, 20 * k)), replace=False))
    start = KMeans(k, n_init=3, random_state=seed).fit(normalize(np.asarray(x[sample], np.float32)))
    km = MiniBatchKMeans(k, init=start.cluster_centers_, n_init=1, random_state=seed, batch_size=CHUNK,
                         reassignment_ratio=0.0)  # a chunk of one class must not move the other centres away
    starts = np.arange(0, len(x), CHUNK)
    for _ in range(epochs):
        for i in rng.permutation(starts):
            km.partial_fit(normalize(np.asarray(x[i:i + CHUNK], np.float32)))
    return np.concatenate([km.predict(normalize(np.asarray(x[i:i + CHUNK], np.float32))) for i in starts])
