"""An export's ``manifest.json``: which run made it and every file it holds (bytes, SHA-256).

Written last, inside the folder being built aside (``pipeline.io.atomic_dir``), so an
export with a manifest was finished. ``verify_export`` is what a consumer (``eval``)
calls first: it refuses an export without a manifest (interrupted, or from before
manifests), a file whose size or hash differs (a part copied in from another export), a
part the manifest does not list, and a part whose ``config.json`` names another run.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.errors import InputError
from pipeline.models.export_spec import SPEC, read_spec, spec_path
from pipeline.io.atomic import write_json
from pipeline.io.json_object import read_json_object

NAME = "manifest.json"
FORMAT = 1
KINDS = ("video", "audio", "text")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, run_id: str, source: str) -> dict:
    """List every file under ``folder`` (the manifest itself aside) and write the manifest."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != NAME:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    kinds = sorted(k for k in KINDS if f"{k}/{SPEC}" in files)
    manifest = {"format": FORMAT, "run_id": run_id, "source": source, "kinds": kinds, "files": files}
    write_json(folder / NAME, manifest, indent=2)
    return manifest


def _load(folder: Path) -> dict:
    path = folder / NAME
    if not path.is_file():  # said of the export, not of the file
        raise InputError(f"export={folder}: incomplete export (no {NAME}: interrupted, or written by a "
                         "version without manifests); run `python -m pipeline export` again")
    manifest = read_json_object(path, "an export manifest", "gone", "run `python -m pipeline export` again")
    if not (manifest.get("format") == FORMAT
            and isinstance(manifest.get("run_id"), str) and isinstance(manifest.get("files"), dict)
            and isinstance(manifest.get("kinds"), list) and all(k in KINDS for k in manifest["kinds"])):
        raise InputError(f"{path}: not an export manifest of format {FORMAT}")
    return manifest


def verify_export(folder: str | os.PathLike) -> dict:
    """The manifest of a whole export from one run; InputError naming what is wrong."""
    folder = Path(folder)
    manifest = _load(folder)
    for rel, want in manifest["files"].items():
        path = folder / rel
        if not (isinstance(want, dict) and Path(rel).parts and ".." not in Path(rel).parts
                and not Path(rel).is_absolute()):
            raise InputError(f"{folder / NAME}: bad entry {rel!r}")
        if not path.is_file():
            raise InputError(f"{path}: missing from the export its manifest describes (incomplete export)")
        if path.stat().st_size != want.get("bytes") or sha256_file(path) != want.get("sha256"):
            raise InputError(f"{path}: not the file this export wrote (size or SHA-256 differs from "
                             f"{NAME}): parts from different exports; export again")
    for kind in KINDS:  # e.g. a stale backbone.ts beside new weights
        for path in sorted((folder / kind).rglob("*")) if (folder / kind).is_dir() else []:
            if path.is_file() and path.relative_to(folder).as_posix() not in manifest["files"]:
                raise InputError(f"{path}: a file its export's {NAME} does not list (left from another "
                                 "export); export again")
    for kind in manifest["kinds"]:
        spec = read_spec(folder / kind)
        if spec.get("run_id") != manifest["run_id"]:
            raise InputError(f"{spec_path(folder / kind)}: from run {spec.get('run_id')!r}, the "
                             f"export's {NAME} from {manifest['run_id']!r}")
    return manifest
