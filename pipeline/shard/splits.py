"""``splits.json`` of a split corpus (``output/train``, ``output/test``, ...): its one
writer (``write_splits``) and its one reader (``read_splits``).

It records which input went to which subset and which inputs the split left out (with
their status), so every input of the corpus is accounted for. Missing, one behaviour:
``read_splits`` raises ``InputError`` naming the path (a corpus sharded without a split
has no listing; ``has_splits`` says which).
"""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError
from pipeline.io.atomic import write_json
from pipeline.io.json_object import read_json_object

SPLITS = "splits.json"


def splits_path(output: str | Path) -> Path:
    """The listing of a split shard output folder (the parent of its subset folders)."""
    return Path(output) / SPLITS


def has_splits(output: str | Path) -> bool:
    return splits_path(output).is_file()


def write_splits(output: str | Path, listing: dict) -> Path:
    """Write the listing atomically; it must name its subsets."""
    if not isinstance(listing.get("subsets"), dict):
        raise ValueError("a split listing maps 'subsets' to their inputs")
    path = splits_path(output)
    write_json(path, listing)
    return path


def read_splits(output: str | Path) -> dict:
    """The listing of ``output``; ``InputError`` naming the path when it is missing or
    not a listing."""
    path = splits_path(output)
    listing = read_json_object(path, "a split listing", f"no {SPLITS} (not the output of a split shard run)",
                               "rebuild it with the shard stage")
    if not isinstance(listing.get("subsets"), dict):
        raise InputError(f"{path}: key 'subsets' must map each subset to its inputs")
    return listing
