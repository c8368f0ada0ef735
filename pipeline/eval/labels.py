"""Class ids across shard folders: each folder's shard index lists its class names and
its samples' ``.cls`` ids index that list. Folders sharded separately (a test split
missing a class) number classes differently, so ids are mapped by name onto one list.
``class_names`` is the shard index's reader (``pipeline.shard.index``), re-exported for
the evaluation modules."""
from __future__ import annotations

import numpy as np

from pipeline.shard.index import class_names

__all__ = ["class_names", "label_map", "remap"]


def label_map(names: list[str], canonical: list[str]) -> np.ndarray:
    """Ids of ``names`` in ``canonical``; names it lacks are appended to it (in place)."""
    for n in names:
        if n not in canonical:
            canonical.append(n)
    return np.asarray([canonical.index(n) for n in names], np.int64)


def remap(labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Per-folder ids -> canonical ids; unlabelled (-1) stays -1."""
    labels = np.asarray(labels)
    return np.where(labels >= 0, mapping[np.clip(labels, 0, max(len(mapping) - 1, 0))], -1) \
        if len(mapping) else labels
