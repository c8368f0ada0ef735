"""Naming clusters: which class does each detector cluster stand for?

Three protocols of the paper, from most to least labelled data:
- Hungarian: one-to-one matching maximising agreement on a labelled set (clusters left
  over when K > classes stay unnamed);
- argmax: each cluster takes its most frequent class (many-to-one);
- k-shot prototypes: only k labelled boxes per class. A class prototype is the mean of
  its shots' cluster-probability vectors (the detector's ROI head on the labelled box),
  L2-normalised; each cluster takes the class whose prototype weights it most (the
  cosine between the cluster's one-hot vector and the prototypes).
Every function returns {cluster id: class id}.
"""
from __future__ import annotations

import numpy as np

from pipeline.eval.clustering import hungarian_match


def hungarian_naming(labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
    return hungarian_match(np.asarray(labels), np.asarray(clusters))


def argmax_naming(labels: np.ndarray, clusters: np.ndarray) -> dict[int, int]:
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    out = {}
    for c in np.unique(clusters):
        vals, counts = np.unique(labels[clusters == c], return_counts=True)
        out[int(c)] = int(vals[np.argmax(counts)])  # ties: the smallest class id
    return out


def pick_shots(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k examples per class (all of a class's examples if it has fewer)."""
    labels = np.asarray(labels)
    picks = [rng.choice(np.flatnonzero(labels == c), size=min(k, int((labels == c).sum())), replace=False)
             for c in np.unique(labels)]
    return np.concatenate(picks) if picks else np.zeros(0, np.int64)


def prototype_naming(scores: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Name every cluster from labelled examples' cluster probabilities ``scores`` [n, K]."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    classes = np.unique(labels)
    protos = np.stack([scores[labels == c].mean(0) for c in classes])        # [C, K]
    protos /= np.linalg.norm(protos, axis=1, keepdims=True) + 1e-12
    return {j: int(classes[int(np.argmax(protos[:, j]))]) for j in range(scores.shape[1])}


def kshot_naming(scores: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator) -> dict[int, int]:
    """Prototype naming from k randomly drawn shots per class."""
    idx = pick_shots(labels, k, rng)
    return prototype_naming(np.asarray(scores)[idx], np.asarray(labels)[idx])
