"""Clustering quality against labels: NMI and ARI (scikit-learn) and accuracy after
Hungarian matching of the contingency matrix (scipy)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


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


def clustering_metrics(labels, clusters) -> dict:
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    return {"nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)),
            "cluster_acc": cluster_accuracy(labels, clusters)}
