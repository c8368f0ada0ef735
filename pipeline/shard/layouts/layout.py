"""What a dataset layout reader returns: classes, the subsets to shard, the inputs left out.

A layout (UCF101, HMDB51, ESC-50, a generic folder or manifest) declares its classes in
its own order (UCF101's ``classInd.txt``, ESC-50's ``target``), and which input goes to
which subset (``train``/``test`` of a split, ``fold1``..``fold5``). Each subset becomes
its own shard set in ``output/<subset>/``; the whole corpus shares one class list, so a
class index means the same thing in every subset. An input the split does not use is
still accounted for: it is listed in ``unused`` with status ``skipped`` and a reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import InputError
from pipeline.shard.corpus import InputItem

SINGLE = ""  # the subset name of an unsplit corpus: its shard set is ``output/`` itself
_SUBSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass
class Layout:
    dataset: str
    classes: list[str]
    subsets: dict[str, list[InputItem]]      # subset name -> its inputs, sorted; SINGLE: unsplit
    unused: list[dict] = field(default_factory=list)  # index entries: path, status, reason
    defaults: dict[str, Any] = field(default_factory=dict)  # values of config keys left unset
    info: dict[str, Any] = field(default_factory=dict)  # what splits.json records about the split

    @property
    def split(self) -> bool:
        return list(self.subsets) != [SINGLE]


def unused_entry(path: str, reason: str, detail: str = "") -> dict:
    """The index entry of an input that is deliberately not sharded."""
    entry = {"path": path, "status": "skipped", "reason": reason, "clips": 0, "seconds": 0.0}
    if detail:
        entry["detail"] = detail
    return entry


def check_subset_name(name: str, where: str) -> str:
    """A subset name becomes a folder name: plain ASCII, no separators."""
    if not _SUBSET_NAME.fullmatch(name):
        raise InputError(f"{where}: split {name!r} is not a usable folder name "
                         "(letters, digits, '_' and '-', starting with a letter or digit)")
    return name


def read_text(path, what: str) -> str:
    """The text of a split or metadata file (a UTF-8 byte-order mark accepted); one error
    naming the file (and the line of a byte that is not UTF-8) otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read {what}: {err.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}:{line}: {what} is not UTF-8 text (byte {err.start})") from None


def read_lines(path, what: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines of a split file; any line ending
    (the official UCF101/HMDB51 lists use CRLF) and a UTF-8 byte-order mark are accepted."""
    text = read_text(path, what)
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
