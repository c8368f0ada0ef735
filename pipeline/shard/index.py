"""``index.json``: the corpus-level view, merged from the per-shard stats files; its one
writer (``build_index``) and its one reader (``read_index``, ``class_names``).

It is rebuilt only from completed shards' stats (never from a running process's memory),
so any process — the last SLURM slice to finish, or a ``merge_only`` run — can build it,
and concurrent builders write the same bytes.

Missing index, one behaviour: ``read_index`` and ``class_names`` raise ``InputError``
naming the path they looked at. A missing index means the shard stage did not finish
there, which a reader cannot tell from a typo in the path, so it is never read as "no
classes". Callers for which unlabelled shards are legitimate (the detection stage, the
SeLaVi cluster browser, the report) ask ``has_index`` first and say so where they call.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io.atomic import write_text
from pipeline.io.json_object import read_json_object

INDEX = "index.json"


def index_path(shards: str | Path) -> Path:
    """The index of a shard folder, or of the folder holding a glob/brace pattern or a tar.
    A path that is neither an existing folder nor a pattern or tar is taken as a folder (not
    yet written, or mistyped): its own index, never the one of the folder above it."""
    base = Path(shards)
    pattern = base.suffix == ".tar" or any(c in base.name for c in "*?[{")
    return (base.parent if pattern and not base.is_dir() else base) / INDEX


def has_index(shards: str | Path) -> bool:
    """Whether the shard stage finished there (its index exists)."""
    return index_path(shards).is_file()


def read_index(shards: str | Path) -> dict:
    """The parsed index of ``shards`` (a folder, pattern or tar); ``InputError`` naming the
    index path when it is missing, unreadable or not an index."""
    path = index_path(shards)
    index = read_json_object(path, "a shard index", f"no {INDEX} for shards {shards} (write them with the shard stage)",
                             "rebuild it with the shard stage (merge_only=true)")
    classes = index.setdefault("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise InputError(f"{path}: key 'classes' must be a list of names")
    return index


def class_names(shards: str | Path) -> list[str]:
    """Class names of a shard set in label-id order ([] for an unlabelled corpus);
    ``InputError`` naming the path when there is no index."""
    return list(read_index(shards)["classes"])


def build_index(output: str | Path, name: str, classes: list[str], stats: list[dict],
                settings: dict) -> dict:
    """Index of a complete corpus from its shards' stats (in shard order)."""
    inputs = [e for s in stats for e in s["inputs"]]
    ok = [e for e in inputs if e["status"] == "ok"]
    index = {
        "name": name,
        "totals": {
            "videos": len(ok), "inputs": len(inputs),
            "failed": sum(e["status"] == "failed" for e in inputs),
            "skipped": sum(e["status"] == "skipped" for e in inputs),
            "clips": sum(s["samples"] for s in stats),
            "hours": round(sum(e["seconds"] for e in ok) / 3600, 6),
            "clip_hours": round(sum(s["seconds"] for s in stats) / 3600, 6),
            "bytes": sum(s["bytes"] for s in stats),
        },
        "classes": classes,
        "settings": settings,
        "shards": [{"name": s["shard"], "samples": s["samples"], "bytes": s["bytes"],
                    "seconds": s["seconds"]} for s in stats],
        "inputs": inputs,
    }
    write_text(Path(output) / INDEX, json.dumps(index, indent=1))
    return index


def stray_shards(output: str | Path, name: str, n_shards: int) -> list[str]:
    """Tars named like ours that the current plan does not contain (an older, bigger run)."""
    expected = {f"{name}-{i:06d}.tar" for i in range(n_shards)}
    return sorted(p.name for p in Path(output).glob(f"{name}-*.tar") if p.name not in expected)


def summary_table(entries: list[dict], wall_s: float, shards_done: int, shards_skipped: int) -> str:
    """Human summary of the inputs processed in this run: statuses, hours, clips, speed."""
    counts = Counter((e["status"], e.get("reason") or e.get("note") or "") for e in entries)
    lines = [f"{'status':<9}{'reason / note':<18}{'inputs':>8}"]
    for (status, reason), n in sorted(counts.items()):
        lines.append(f"{status:<9}{reason:<18}{n:>8}")
    seconds = sum(e.get("seconds", 0.0) for e in entries if e["status"] == "ok")
    clips = sum(e.get("clips", 0) for e in entries)
    rate = seconds / wall_s if wall_s > 0 else 0.0
    lines.append(f"shards written {shards_done}, already complete {shards_skipped}; "
                 f"hours in {seconds / 3600:.3f}, clips out {clips}, wall {wall_s:.1f} s, "
                 f"{rate:.1f} input-s/s, {len(entries) / wall_s if wall_s > 0 else 0:.2f} videos/s")
    return "\n".join(lines)
