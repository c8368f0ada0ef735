"""Fetch a few samples' members by key from shards (for thumbnails and players)."""
from __future__ import annotations

import tarfile
from typing import Iterable

from pipeline.loader.loader import expand_shards


def read_samples(pattern: str, keys: Iterable[str], exts: tuple[str, ...] = ("mp4", "wav", "json")) -> dict:
    """{key: {ext: bytes}} for the wanted keys; stops reading once all are found."""
    wanted = set(keys)
    found: dict[str, dict[str, bytes]] = {}
    for path in expand_shards(pattern):
        with tarfile.open(path) as tf:
            for member in tf:
                key, _, ext = member.name.partition(".")
                if key in wanted and ext in exts:
                    found.setdefault(key, {})[ext] = tf.extractfile(member).read()
        if all(k in found and len(found[k]) >= len(exts) - 1 for k in wanted):
            break
    return found
