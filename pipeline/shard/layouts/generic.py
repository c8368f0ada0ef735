"""The generic layout: a folder tree (class = parent folder) or a csv/jsonl manifest.

A folder may declare its split in ``splits.csv`` (columns ``path``, ``split``; paths
relative to the folder): one shard set per split value, ``output/<split>/``. A folder
without one is split by default (``holdout``, 0.2 of each class's files in
``output/test/``, the rest in ``output/train/``), so nothing is scored on its own
training clips unless asked for (``holdout=0``: one shard set in ``output/``). A
manifest lists what its author chose and is not split unless ``holdout`` is set.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.shard.corpus import InputItem, class_names, read_corpus
from pipeline.shard.layouts.holdout import holdout_split
from pipeline.shard.layouts.layout import SINGLE, Layout, check_subset_name, read_text, unused_entry

SPLITS_FILE = "splits.csv"
FOLDER_HOLDOUT = 0.2


def read_splits(path: Path) -> list[tuple[str, str, str]]:
    """(where, path, split) rows of ``splits.csv``; an error names the file and line."""
    reader = csv.DictReader(io.StringIO(read_text(path, SPLITS_FILE), newline=""))
    if not {"path", "split"} <= set(reader.fieldnames or []):
        raise InputError(f"{path}:1: needs the columns 'path' and 'split'")
    rows = []
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        rel, split = (row.get("path") or "").strip(), (row.get("split") or "").strip()
        if not rel or not split:
            raise InputError(f"{where}: a row needs a path and a split")
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts:
            raise InputError(f"{where}: path {rel!r} must be relative to the folder, inside it")
        rows.append((where, pure.as_posix(), check_subset_name(split, where)))
    return rows


def _declared(root: Path, cfg, items: list[InputItem]) -> Layout:
    splits = root / SPLITS_FILE
    if cfg.holdout:
        raise ConfigError(f"holdout={cfg.holdout}: {splits} declares the split; "
                          "leave holdout unset (or 0)")
    on_disk = {it.path: it for it in items}
    subsets: dict[str, list[InputItem]] = {}
    seen: dict[str, str] = {}
    for where, rel, split in read_splits(splits):
        if rel in seen:
            raise InputError(f"{where}: {rel} is already listed at {seen[rel]}")
        seen[rel] = where
        parent = PurePosixPath(rel).parent.name
        item = on_disk.get(rel) or InputItem(
            path=rel, abspath=str(root / rel), identity=rel,
            label=(parent or None) if cfg.labels_from_folders else None)
        subsets.setdefault(split, []).append(item)
    if not subsets:
        raise InputError(f"{splits}: no rows")
    unused = [unused_entry(p, "not_in_split", f"not listed in {SPLITS_FILE}")
              for p in sorted(on_disk) if p not in seen]
    listed = [it for group in subsets.values() for it in group]
    return Layout("generic", class_names(listed),
                  {k: sorted(v, key=lambda it: it.path) for k, v in sorted(subsets.items())},
                  unused, info={"splits": SPLITS_FILE})


def read(cfg) -> Layout:
    if cfg.split_lists:
        raise ConfigError(f"split_lists={cfg.split_lists}: only the ucf101 and hmdb51 layouts "
                          "read official split lists; a folder declares its split in splits.csv")
    if cfg.split is not None:
        raise ConfigError(f"split={cfg.split}: only the ucf101 and hmdb51 layouts have numbered "
                          "splits; a folder declares its own in splits.csv")
    root = Path(cfg.input)
    items = read_corpus(cfg.input, cfg.extensions, cfg.labels_from_folders)
    if root.is_dir() and (root / SPLITS_FILE).is_file():
        return _declared(root, cfg, items)
    fraction = (FOLDER_HOLDOUT if root.is_dir() else 0.0) if cfg.holdout is None else cfg.holdout
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"holdout={fraction}: the held-out fraction must be in [0, 1)")
    classes = class_names(items)
    if not fraction:
        return Layout("generic", classes, {SINGLE: items}, info={"holdout": 0.0})
    subsets = holdout_split(items, fraction, cfg.holdout_seed)
    for name, part in subsets.items():
        if not part:
            raise InputError(f"input {cfg.input}: holdout={fraction} of {len(items)} input(s) "
                             f"leaves {name} empty; use more files or holdout=0")
    return Layout("generic", classes, subsets, info={
        "holdout": fraction, "holdout_seed": cfg.holdout_seed, "stratified_by_label": bool(classes),
        "grouped_by": "source file"})
