"""Pseudo labels as side files beside the shards: one JSON-lines file per shard, one row
per box: ``{key, frame, start, box, cluster, score}`` (frames without a box have no row).

Why per shard: the pseudo-box pass streams, so a shard's rows are written (atomically)
as soon as its last clip has been seen and only the shards being read are buffered; and
a shard set's labels are found, checked and replaced shard by shard. Reading them back
for the detector gives a compact table keyed by a 64-bit hash of (key, frame): about
``TABLE_BYTES_PER_FRAME`` bytes per frame plus 16 per box, never the frames themselves.
"""
from __future__ import annotations

import hashlib
import json
from array import array
import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from pipeline.errors import InputError
from pipeline.io.atomic import atomic_open

TABLE_BYTES_PER_FRAME = 8 + 8 + 2  # hash, first-box offset, cluster


def key_hash(key: str, frame: int = -1) -> int:
    """64-bit hash of a clip key (frame -1) or of a (key, frame) pair."""
    h = hashlib.blake2b(f"{key}\0{frame}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1  # fits int64


def side_names(shards: list[str]) -> list[str]:
    """The side file name of each shard: its stem, prefixed by its position where two
    shards of the set share a stem (shards from several folders)."""
    stems = [Path(s).name.removesuffix(".tar") for s in shards]
    if len(set(stems)) == len(stems):
        return [f"{s}.jsonl" for s in stems]
    return [f"{i:06d}-{s}.jsonl" for i, s in enumerate(stems)]


def _shard_keys(path: str) -> set[str]:
    """Sample keys of a tar shard from its member headers (no member data is read)."""
    try:
        with tarfile.open(path) as tf:
            return {m.name.split("/")[-1].partition(".")[0] for m in tf if m.isfile()}
    except (OSError, tarfile.TarError) as err:
        raise InputError(f"{path}: unreadable shard ({err})") from None


class SideFileWriter:
    """Buffers rows per shard; writes a shard's file once all of its clips were added."""

    def __init__(self, folder: Path, shards: list[str]):
        self.folder, self.names = Path(folder), side_names(shards)
        shutil.rmtree(self.folder, ignore_errors=True)  # never mix with an older pass
        self.folder.mkdir(parents=True)
        hashes, owner = [], []
        self.remaining = []
        for i, path in enumerate(shards):
            keys = _shard_keys(path)
            hashes.extend(key_hash(k) for k in keys)
            owner.extend([i] * len(keys))
            self.remaining.append(len(keys))
        order = np.argsort(np.asarray(hashes, np.int64), kind="stable")
        self.hashes = np.asarray(hashes, np.int64)[order]   # 12 bytes per clip with owner
        self.owner = np.asarray(owner, np.int32)[order]
        self.rows: dict[int, list[str]] = defaultdict(list)
        self.written = [False] * len(shards)
        self.boxes = 0

    def _shard_of(self, key: str) -> int:
        h = key_hash(key)
        j = int(np.searchsorted(self.hashes, h))
        if j == len(self.hashes) or self.hashes[j] != h:
            raise InputError(f"clip {key!r} is in none of the shards being labelled")
        return int(self.owner[j])

    def add_clip(self, key: str, rows: list[dict]) -> None:
        """All box rows of one clip (every frame of it)."""
        s = self._shard_of(key)
        if self.written[s]:
            raise InputError(f"clip {key!r}: its shard's side file {self.names[s]} is already complete "
                             "(a key twice in the shard?)")
        self.rows[s].extend(json.dumps(r) for r in rows)
        self.boxes += len(rows)
        self.remaining[s] -= 1
        if self.remaining[s] == 0:
            self._write(s)

    def _write(self, s: int) -> None:
        with atomic_open(self.folder / self.names[s]) as fh:
            fh.writelines(line + "\n" for line in self.rows.pop(s, []))
        self.written[s] = True

    def close(self) -> int:
        """Write the shards whose clips were not all readable; returns the box count."""
        for s, done in enumerate(self.written):
            if not done:
                self._write(s)
        return self.boxes


class PseudoLabels:
    """The side files of a shard set as one table: boxes and cluster of a (key, frame)."""

    def __init__(self, folder: Path, shards: list[str]):
        folder = Path(folder)
        missing = [n for n in side_names(shards) if not (folder / n).is_file()]
        if missing:
            raise InputError(f"{folder / missing[0]}: missing ({len(missing)} of {len(shards)} side files; "
                             "run the detect stage with the 'pseudo' step first)")
        hashes, clusters, boxes = array("q"), array("h"), array("f")  # one entry per box row
        for name in side_names(shards):
            path = folder / name
            with open(path) as fh:
                for n, line in enumerate(fh, 1):
                    try:
                        r = json.loads(line)
                        box = [float(v) for v in r["box"]]
                        if len(box) != 4:
                            raise ValueError(f"box of {len(box)} values")
                        hashes.append(key_hash(r["key"], int(r["frame"])))
                        clusters.append(int(r["cluster"]))
                        boxes.extend(box)
                    except (ValueError, KeyError, TypeError) as err:
                        raise InputError(f"{path}:{n}: not a pseudo-label row ({err})") from None
        if not hashes:
            raise InputError(f"{folder}: no pseudo boxes in the side files of {len(shards)} shard(s)")
        h = np.frombuffer(hashes, np.int64)
        order = np.argsort(h, kind="stable")  # a frame's boxes stay in their written order
        h = h[order]
        self.hashes, first = np.unique(h, return_index=True)
        self.offsets = np.append(first, len(h))
        self.cluster = np.frombuffer(clusters, np.int16)[order][first]
        self.boxes = np.frombuffer(boxes, np.float32).reshape(-1, 4)[order]

    def __len__(self) -> int:
        return len(self.hashes)

    def get(self, key: str, frame: int) -> tuple[np.ndarray, int]:
        """Boxes [m, 4] (normalised) and cluster of a frame; none (background) if unlisted."""
        h = key_hash(key, frame)
        j = int(np.searchsorted(self.hashes, h))
        if j == len(self.hashes) or self.hashes[j] != h:
            return np.zeros((0, 4), np.float32), 0
        return self.boxes[self.offsets[j]:self.offsets[j + 1]], int(self.cluster[j])
