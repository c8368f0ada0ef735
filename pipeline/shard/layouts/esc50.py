"""ESC-50 as distributed: ``audio/<fold>-<id>-<take>-<target>.wav`` + ``meta/esc50.csv``.

The CSV (``filename, fold, target, category, esc10, src_file, take``) gives each
recording's fold (1-5) and class; ``target`` is the class index, so classes are ordered
by it. Every fold becomes its own shard set ``output/fold<k>/`` (the protocol is 5-fold
cross-validation over the official folds). Recordings are audio only (5 s at 44.1 kHz):
the samples hold ``.wav`` + ``.json`` (+ ``.cls``), no ``.mp4``, one 5 s clip each by
default. A row naming a missing file gets ``failed: missing``; a ``.wav`` the CSV does
not list is ``skipped: not_in_split``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.shard.corpus import InputItem, printable
from pipeline.shard.layouts.layout import Layout, read_text, unused_entry

COLUMNS = ("filename", "fold", "target", "category")
FOLDS = (1, 2, 3, 4, 5)


def _int(row: dict, key: str, where: str) -> int:
    text = (row.get(key) or "").strip()
    if not text.lstrip("-").isdigit():
        raise InputError(f"{where}: '{key}' must be an integer, got {text!r}")
    return int(text)


def read_meta(path: Path) -> list[tuple[int, dict]]:
    """(line, row) of ``esc50.csv``; an error names the file and line of a bad row."""
    reader = csv.DictReader(io.StringIO(read_text(path, "ESC-50 metadata"), newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}:1: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(COLUMNS)}, esc10, src_file, take)")
    return list(enumerate(reader, start=2))


def read(cfg) -> Layout:
    root = Path(cfg.input)
    audio, meta = root / "audio", root / "meta" / "esc50.csv"
    if not audio.is_dir():
        raise InputError(f"input {root}: an ESC-50 layout holds audio/ and meta/esc50.csv")
    if cfg.split_lists:
        raise ConfigError(f"split_lists={cfg.split_lists}: ESC-50's folds come from meta/esc50.csv "
                          "inside input; leave split_lists unset")
    if cfg.split is not None:
        raise ConfigError("split: ESC-50 is evaluated over its 5 official folds; every fold is "
                         "written (output/fold1 .. fold5), leave split unset")
    names: dict[int, str] = {}
    subsets: dict[str, list[InputItem]] = {}
    listed = set()
    for line, row in read_meta(meta):
        where = f"{meta}:{line}"
        name = (row.get("filename") or "").strip()
        if not name.endswith(".wav") or "/" in name or "\\" in name:
            raise InputError(f"{where}: 'filename' must be a .wav file name in audio/, got {name!r}")
        fold, target = _int(row, "fold", where), _int(row, "target", where)
        category = (row.get("category") or "").strip()
        if fold not in FOLDS:
            raise InputError(f"{where}: fold {fold} is not one of 1-5")
        if target < 0 or not category:
            raise InputError(f"{where}: needs a target >= 0 and a category")
        if names.setdefault(target, category) != category:
            raise InputError(f"{where}: target {target} is {category!r} here but "
                             f"{names[target]!r} on an earlier line")
        if name in listed:
            raise InputError(f"{where}: {name} listed twice")
        listed.add(name)
        extra = {k: row[k] for k in ("esc10", "src_file", "take") if row.get(k) not in (None, "")}
        subsets.setdefault(f"fold{fold}", []).append(InputItem(
            path=name, abspath=str(audio / name), identity=name, label=category,
            extra=extra, audio_only=True))
    if not names:
        raise InputError(f"{meta}: no recordings listed")
    if sorted(names) != list(range(len(names))):
        gaps = sorted(set(range(max(names) + 1)) - set(names))
        raise InputError(f"{meta}: targets must run 0..K-1 (they are class indices); "
                         f"no row has target {gaps[0]}")
    classes = [names[t] for t in range(len(names))]
    on_disk = sorted(printable(p.name) for p in audio.iterdir() if p.suffix.lower() == ".wav")
    unused = [unused_entry(n, "not_in_split", "not listed in meta/esc50.csv")
              for n in on_disk if n not in listed]
    subsets = {k: sorted(v, key=lambda it: it.path) for k, v in sorted(subsets.items())}
    return Layout("esc50", classes, subsets, unused, defaults={"clip_seconds": 5.0},
                  info={"folds": sorted(subsets), "meta": "meta/esc50.csv"})
