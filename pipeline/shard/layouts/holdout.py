"""A held-out split for a corpus that declares none: stratified by label, grouped by source.

Scoring a model on the clips it was trained on reads as a result and is not one (every
clip is its own nearest neighbour), so an unsplit folder gets a test part by default.
Clips of one source file never straddle the split: the unit is the file (a manifest may
cut one file into several segments). Within each label, files are ranked by a hash of
(seed, path) and the first ``round(fraction * n)`` go to test: a file's rank depends only
on the seed and its own path, so adding files to a corpus moves few of the others.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

from pipeline.shard.corpus import InputItem


def _rank(seed: int, path: str) -> str:
    return hashlib.sha1(f"{seed}/{path}".encode("utf-8")).hexdigest()


def holdout_split(items: list[InputItem], fraction: float, seed: int) -> dict[str, list[InputItem]]:
    """``{"train": [...], "test": [...]}``: about ``fraction`` of each label's files in test."""
    by_file: dict[str, list[InputItem]] = defaultdict(list)
    for it in items:
        by_file[it.path].append(it)
    strata: dict[str, list[str]] = defaultdict(list)
    for path, segs in by_file.items():
        labels = Counter(it.label for it in segs if it.label is not None)
        # a file whose segments carry several labels is filed under its most common one
        strata[min(labels, key=lambda k: (-labels[k], k)) if labels else ""].append(path)
    test: set[str] = set()
    for paths in strata.values():
        n_test = int(fraction * len(paths) + 0.5)
        test.update(sorted(paths, key=lambda p: _rank(seed, p))[:n_test])
    return {"train": [it for it in items if it.path not in test],
            "test": [it for it in items if it.path in test]}
