"""The inputs of the shard stage: a folder tree of videos or a CSV/JSONL manifest.

Both become the same sorted list of :class:`InputItem`, so shard assignment depends only
on the corpus, never on listing order or on which machine (or SLURM slice) reads it.
A malformed manifest row stops the run before any work, naming the file and line;
a broken *video* does not (it gets a status when it is processed).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from pipeline.errors import InputError
from pipeline.shard.keys import name_bytes

VIDEO_EXTENSIONS = ("3gp", "avi", "flv", "m2ts", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg",
                    "mts", "ogv", "ts", "vob", "webm", "wmv")
KNOWN_COLUMNS = ("path", "caption", "label", "start", "end", "boxes")


@dataclass
class InputItem:
    path: str                       # as given: manifest text, or relative to the input folder
    abspath: str
    identity: str                   # hashed into the sample keys; unique in the corpus
    label: str | None = None
    caption: str | None = None
    start: float | None = None      # segment of the source to use, seconds
    end: float | None = None
    boxes: list[list[float]] | None = None  # [t, x0, y0, x1, y1], t in source seconds
    extra: dict[str, Any] = field(default_factory=dict)
    audio_only: bool = False        # a sound recording (ESC-50): samples get .wav, no .mp4


def read_corpus(source: str, extensions: list[str] | tuple[str, ...] = VIDEO_EXTENSIONS,
                labels_from_folders: bool = True) -> list[InputItem]:
    """Sorted inputs of a folder or manifest; an InputError names what is wrong."""
    src = Path(source)
    if src.is_dir():
        items = list(_folder_items(src, {e.lower().lstrip(".") for e in extensions},
                                   labels_from_folders))
    elif src.is_file() and src.suffix.lower() in (".csv", ".jsonl", ".json"):
        items = _manifest_items(src)
    elif src.exists():
        raise InputError(f"input {source}: expected a folder of videos or a .csv/.jsonl manifest")
    else:
        raise InputError(f"input {source}: no such file or folder")
    if not items:
        raise InputError(f"input {source}: no videos found")
    items.sort(key=lambda it: (it.path, -1.0 if it.start is None else it.start,
                               math.inf if it.end is None else it.end))
    seen: Counter[str] = Counter()
    for it in items:  # the same file and segment listed twice still gets distinct keys
        seen[it.identity] += 1
        if seen[it.identity] > 1:
            it.identity = f"{it.identity}#{seen[it.identity] - 1}"
    return items


def printable(name: str) -> str:
    """``name`` as valid UTF-8 text for the index, the samples and the logs: a byte of a
    file or folder name that is not UTF-8 (listed by Python as a lone surrogate) becomes
    ``\\xNN``. The input itself is still opened by its real name (``abspath``) and keyed
    by the hash of its real bytes (``identity``)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name_bytes(name).decode("utf-8", "backslashreplace")


def class_names(items: list[InputItem]) -> list[str]:
    """Sorted label names; numerically when every label is an integer (so "10" > "9")."""
    names = {it.label for it in items if it.label is not None}
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def confinement_root(source: str, confine: bool | None) -> str | None:
    """The folder inputs must stay inside (real path), or None when not confined:
    ``confine`` unset means on for a folder corpus, off for a manifest."""
    src = Path(source)
    if confine is False or (confine is None and not src.is_dir()):
        return None
    return os.path.realpath(src if src.is_dir() else src.parent)


def is_inside(path: str, root: str) -> bool:
    """Whether ``path``, every symbolic link resolved, lies inside the real folder ``root``."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _folder_items(root: Path, exts: set[str], labels: bool) -> Iterator[InputItem]:
    """Every video below ``root``, symbolic links to folders followed (but never round a
    loop), so a linked class folder is listed; where its files lead is judged later."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if any(os.path.realpath(up) == real for up in Path(dirpath).parents
               if len(up.parts) >= len(root.parts)):
            dirnames[:] = []  # a link back to a folder above: its files are listed there
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.rsplit(".", 1)[-1].lower() not in exts or "." not in name:
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            parent = printable(PurePosixPath(rel).parent.name)
            yield InputItem(path=printable(rel), abspath=str(full), identity=rel,
                            label=(parent or None) if labels else None)


def manifest_text(path: Path) -> str:
    """The manifest's text; one error naming the line of a byte that is not UTF-8 (a
    file name in another encoding: write it as a JSON ``\\udcNN`` escape of each byte)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); "
                         "a manifest is UTF-8") from None


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    text = manifest_text(path)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise InputError(f"{path}: CSV manifest needs a 'path' column")
        for i, row in enumerate(reader, start=2):
            yield i, {k: v for k, v in row.items() if k is not None and v not in ("", None)}
        return
    for i, line in enumerate(text.split("\n"), start=1):  # JSON text may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{i}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{i}: each line must be a JSON object")
        yield i, row


def _manifest_items(path: Path) -> list[InputItem]:
    base = path.parent
    items = []
    for line, row in _rows(path):
        where = f"{path}:{line}"
        if not row.get("path"):
            raise InputError(f"{where}: row has no 'path'")
        given = str(row["path"])
        start, end = _seconds(row.get("start"), where, "start"), _seconds(row.get("end"), where, "end")
        if start is not None and end is not None and end <= start:
            raise InputError(f"{where}: end ({end}) must be after start ({start})")
        identity = given if start is None and end is None else f"{given}@{start}-{end}"
        label = row.get("label")
        caption = row.get("caption")
        items.append(InputItem(
            path=printable(given), abspath=str(base / given), identity=identity,
            label=None if label in (None, "") else str(label),
            caption=None if caption in (None, "") else str(caption),
            start=start, end=end, boxes=_boxes(row.get("boxes"), where),
            extra={k: v for k, v in row.items() if k not in KNOWN_COLUMNS}))
    return items


def _seconds(value: Any, where: str, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: '{name}' must be a number of seconds, got {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise InputError(f"{where}: '{name}' must be >= 0 seconds, got {value!r}")
    return out


def _boxes(value: Any, where: str) -> list[list[float]] | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):  # CSV cells hold the JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{where}: 'boxes' is not a JSON list") from None
    ok = isinstance(value, list) and all(
        isinstance(b, (list, tuple)) and len(b) == 5
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b) for b in value)
    if not ok:
        raise InputError(f"{where}: 'boxes' must be a list of [t, x0, y0, x1, y1] numbers")
    return [[float(v) for v in b] for b in value]
