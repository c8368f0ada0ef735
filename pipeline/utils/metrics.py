"""Metrics as JSON lines: one object per line, appended, readable while a run goes on."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class JsonlWriter:
    """Append-only metrics log; each record gets a wall-clock ``time``.

    Appended in place, not rewritten atomically: a log grows by one line per step, and
    rewriting it whole each time would cost O(steps) per line. One ``write`` per line,
    and ``read_jsonl`` drops a torn last line from a killed writer; the one rewrite (a
    resume cutting the log back to its checkpoint) goes through ``io/atomic``."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"time": round(time.time(), 3), **{k: _clean(v) for k, v in record.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file, ignoring a torn last line from a killed writer."""
    rows = []
    with open(path) as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
