"""Per-sample features on disk, read back memory-mapped: evaluation memory stays flat in
the corpus size except for the N x D arrays themselves, which the page cache holds.

Rows are appended batch by batch as they are extracted (loader order, which depends on
worker timing), then rewritten sorted by key, so every metric sees the same order on
every run (sorted by video, then key). ``meta.json`` is written last and carries a fingerprint of what made the
features (export, shards, clips, random init): a folder without it, or with another
fingerprint, is extracted again.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.io.atomic import atomic_open, commit, temp_path, write_json
from pipeline.shard.keys import video_of

CHUNK = 8192  # rows copied at a time when sorting or grouping


@dataclass
class FeatureSet:
    """keys and labels in memory (small), feature columns as read-only memmaps."""
    folder: Path
    keys: np.ndarray          # [N] str, sorted by (video, key)
    labels: np.ndarray        # [N] int64 (-1: unlabelled)
    cols: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.keys)

    def __contains__(self, name: str) -> bool:
        return name in self.cols

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    @classmethod
    def open(cls, folder: str | Path, fingerprint: str | None = None) -> "FeatureSet | None":
        folder = Path(folder)
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if fingerprint is not None and meta.get("fingerprint") != fingerprint:
            return None
        cols = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in meta["columns"]}
        return cls(folder, np.load(folder / "keys.npy"), np.load(folder / "labels.npy"), cols)


class FeatureWriter:
    """Append rows as they come; ``finish`` sorts them by key into a FeatureSet."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "meta.json").unlink(missing_ok=True)  # incomplete until finish
        self.keys: list[str] = []
        self.labels: list[np.ndarray] = []
        self.raw: dict[str, tuple[Path, object, int]] = {}
        self.temps: list[Path] = []  # temporaries of finish(), removed if it fails

    def add(self, keys: list[str], labels: np.ndarray, cols: dict[str, np.ndarray]) -> None:
        self.keys.extend(keys)
        self.labels.append(np.asarray(labels, np.int64))
        for name, arr in cols.items():
            arr = np.ascontiguousarray(arr, np.float32)
            if name not in self.raw:
                path = temp_path(self.folder / f"{name}.raw")
                self.raw[name] = (path, open(path, "wb"), arr.shape[1])
            self.raw[name][1].write(arr.tobytes())

    def finish(self, fingerprint: str, info: dict | None = None) -> FeatureSet:
        try:
            return self._finish(fingerprint, info)
        except BaseException:  # a full disk, ``ulimit -f``: leave no temporary behind
            self.abort()
            raise

    def _finish(self, fingerprint: str, info: dict | None) -> FeatureSet:
        keys = np.asarray(self.keys, dtype=str)
        # by (video, key): a video's clips end up contiguous even when one video id is a
        # prefix of another's keys
        order = np.lexsort((keys, np.asarray([video_of(k) for k in self.keys], dtype=str)))
        n = len(keys)
        for name, (raw, fh, dim) in self.raw.items():
            fh.close()
            src = np.memmap(raw, np.float32, mode="r", shape=(n, dim))
            tmp = temp_path(self.folder / f"{name}.npy")
            self.temps.append(tmp)
            dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            for i in range(0, n, CHUNK):
                dst[i:i + CHUNK] = src[order[i:i + CHUNK]]
            dst.flush()
            del src, dst
            commit(tmp, self.folder / f"{name}.npy")
            raw.unlink()
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)
        _save_npy(self.folder / "keys.npy", keys[order])
        _save_npy(self.folder / "labels.npy", labels[order])
        write_json(self.folder / "meta.json", {"fingerprint": fingerprint, "n": n,
                                               "columns": sorted(self.raw), **(info or {})})
        # built from what this writer committed, not from meta.json, which a concurrent
        # writer of the same folder (array tasks sharing a cache) may be replacing
        cols = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self.raw}
        return FeatureSet(self.folder, keys[order], labels[order], cols)

    def abort(self) -> None:
        for raw, fh, _ in self.raw.values():
            with contextlib.suppress(OSError):  # flushing what is left may fail as the write did
                fh.close()
            raw.unlink(missing_ok=True)
        for tmp in self.temps:
            tmp.unlink(missing_ok=True)


def remove_temporaries(root: str | Path) -> int:
    """Remove what killed feature writers left under ``root`` (``.NAME.*.tmp``); only
    for a caller that owns ``root`` whole (no other writer can be running)."""
    n = 0
    for p in Path(root).rglob(".*.tmp") if Path(root).is_dir() else []:
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_open(path, "wb") as fh:  # a file object: numpy would append ".npy" to a name
        np.save(fh, arr)


def video_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(video ids, start row of each) of rows sorted as a FeatureSet is: a video's clips
    are contiguous."""
    vids = np.asarray([video_of(k) for k in keys], dtype=str)
    if not len(vids):
        return vids, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, vids[1:] != vids[:-1]])
    return vids[starts], starts


def by_video(fs: FeatureSet, columns: list[str], folder: str | Path) -> FeatureSet:
    """One row per video: the mean of its samples' rows (video-level protocols), written
    memory-mapped like the per-sample set. A video's label is its first sample's."""
    folder = Path(folder)
    fingerprint = json.loads((fs.folder / "meta.json").read_text())["fingerprint"] + "/by_video"
    done = FeatureSet.open(folder, fingerprint)
    if done is not None:
        return done
    vids, starts = video_runs(fs.keys)
    ends = np.r_[starts[1:], fs.n]
    writer = FeatureWriter(folder)
    for i in range(0, len(vids), CHUNK):
        s, e = starts[i:i + CHUNK], ends[i:i + CHUNK]
        lo, hi = int(s[0]), int(e[-1])
        cols = {c: np.add.reduceat(np.asarray(fs[c][lo:hi], np.float64), s - lo, axis=0)
                / (e - s)[:, None] for c in columns}
        writer.add(list(vids[i:i + CHUNK]), fs.labels[s], cols)
    return writer.finish(fingerprint)


def select_rows(fs: FeatureSet, rows: np.ndarray, folder: str | Path, tag: str) -> FeatureSet:
    """Some rows of a set (or of several sets stacked: ``concat``) as a new memory-mapped set."""
    return concat([(fs, np.sort(np.asarray(rows, np.int64)))], folder, tag)


def concat(parts: list[tuple[FeatureSet, np.ndarray | None]], folder: str | Path, tag: str) -> FeatureSet:
    """The rows of several sets (all rows where ``None``) as one set, copied in chunks;
    ``tag`` names the selection in the fingerprint so a cached copy is reused."""
    folder = Path(folder)
    fps = [json.loads((fs.folder / "meta.json").read_text())["fingerprint"] for fs, _ in parts]
    fingerprint = "+".join(fps) + f"/{tag}"
    done = FeatureSet.open(folder, fingerprint)
    if done is not None:
        return done
    columns = sorted(set.intersection(*(set(fs.cols) for fs, _ in parts)))
    writer = FeatureWriter(folder)
    for fs, rows in parts:
        rows = np.arange(fs.n) if rows is None else rows
        for i in range(0, len(rows), CHUNK):
            r = rows[i:i + CHUNK]
            writer.add(list(fs.keys[r]), fs.labels[r], {c: fs[c][r] for c in columns})
    return writer.finish(fingerprint)


def middle_sample_rows(fs: FeatureSet) -> np.ndarray:
    """Per video, the row of its middle sample (one temporal crop per video)."""
    _, starts = video_runs(fs.keys)
    ends = np.r_[starts[1:], fs.n]
    return starts + (ends - starts) // 2
