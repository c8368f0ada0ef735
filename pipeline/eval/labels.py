"""Class ids across shard folders: each folder's ``index.json`` lists its class names and
its samples' ``.cls`` ids index that list. Folders sharded separately (a test split
missing a class) number classes differently, so ids are mapped by name onto one list."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import InputError


def class_names(shards: str) -> list[str]:
    """The class names of a shard folder (or of the folder of a glob/brace pattern)."""
    base = Path(shards)
    index = (base if base.is_dir() else base.parent) / "index.json"
    if not index.is_file():
        raise InputError(f"{shards}: no index.json beside the shards (write them with the shard stage)")
    return list(json.loads(index.read_text()).get("classes", []))


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
