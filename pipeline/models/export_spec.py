"""An exported backbone's ``config.json``: its one writer (``write_spec``) and its one
reader (``read_spec``), and the one test for "is this an export" (``has_spec``).

An export folder may come from anyone, so the file is read as plain data (no OmegaConf
interpolation, so no ``${oc.env:...}`` reaches a value or an error message) and checked
key by key. Missing, one behaviour: ``read_spec`` raises ``InputError`` naming the path;
callers that choose between an export and something else ask ``has_spec`` first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.io.atomic import write_json
from pipeline.io.json_object import read_json_object
from pipeline.models.registry import BUILDERS

SPEC = "config.json"


def spec_path(folder: str | Path) -> Path:
    """Where the export of one tower (``EXPORT/video``, ``EXPORT/audio``) keeps its spec."""
    return Path(folder) / SPEC


def has_spec(folder: str | Path) -> bool:
    """Whether ``folder`` is an exported tower (its spec exists)."""
    return spec_path(folder).is_file()


def write_spec(folder: str | Path, spec: dict) -> Path:
    """Write a tower's spec atomically (the export stage's last file of the tower)."""
    path = spec_path(folder)
    write_json(path, spec, indent=2)
    return path


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def read_spec(folder: str | Path) -> dict:
    """The export's ``config.json``, checked; InputError names what is wrong (a missing
    file included: the folder is not an export)."""
    path = spec_path(folder)
    spec = read_json_object(path, "an export config", f"not an exported backbone folder (no {SPEC})",
                            "export the run again (`python -m pipeline export RUN`)")
    if spec.get("kind") not in BUILDERS:
        raise InputError(f"{path}: unknown kind {spec.get('kind')!r}; this version loads {', '.join(BUILDERS.names())}")
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("args", {}), dict):
        raise InputError(f"{path}: 'name' must be a backbone name and 'args' a mapping")
    if any("${" in s for s in _strings(spec.get("args", {}))):
        raise InputError(f"{path}: 'args' holds an interpolation (${{...}}); exports hold plain values")
    head = spec.get("head")
    if head is not None and not (isinstance(head, dict) and all(
            isinstance(head.get(k), int) and not isinstance(head.get(k), bool) and head[k] > 0
            for k in ("in_dim", "hidden", "out_dim")) and isinstance(head.get("normalize"), bool)):
        raise InputError(f"{path}: 'head' must give positive integers in_dim, hidden, out_dim and a "
                         "boolean normalize")
    return spec
