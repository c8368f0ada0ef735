"""Dataset layouts the shard stage reads as distributed (``dataset=``): name -> reader.

Each reader takes the shard config and returns a :class:`Layout`; it only reads listings
and split files, so a malformed split file is reported (file and line) before any video
is touched.
"""
from __future__ import annotations

from typing import Callable

from pipeline.config import ConfigError
from pipeline.shard.layouts import esc50, generic, hmdb51, ucf101
from pipeline.shard.layouts.layout import SINGLE, Layout

READERS: dict[str, Callable[..., Layout]] = {
    "generic": generic.read, "ucf101": ucf101.read, "hmdb51": hmdb51.read, "esc50": esc50.read}

__all__ = ["READERS", "SINGLE", "Layout", "read_layout"]


def read_layout(cfg) -> Layout:
    reader = READERS.get(cfg.dataset)
    if reader is None:
        raise ConfigError(f"dataset={cfg.dataset!r}; choose from {', '.join(READERS)}")
    return reader(cfg)
