"""UCF101 as distributed: ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` + ``ucfTrainTestlist/``.

``classInd.txt`` (``1 ApplyEyeMakeup``) fixes the class order; ``trainlist0k.txt`` lines
carry the 1-based class index (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``),
``testlist0k.txt`` lines do not. The official lists end lines with CRLF. Split ``k``
shards its train list into ``output/train/`` and its test list into ``output/test/``.
About half of the classes have no sound, so clips are kept video-only by default.
A listed video missing on disk is an input with status ``failed: missing``; a video on
disk in neither list is ``skipped: not_in_split``. A malformed line is an error that
names the file and line, before any work.

``split_lists=FOLDER`` reads the lists from their own folder; ``input`` is then the folder
of the class folders (``UCF-101/`` itself, wherever it is). When no listed video is found,
the layout stops before anything is written, saying where it looked and where videos are.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.shard.corpus import InputItem, read_corpus
from pipeline.shard.layouts.layout import Layout, read_lines, unused_entry
from pipeline.shard.layouts.lists import check_found

VIDEOS, LISTS = "UCF-101", "ucfTrainTestlist"
SPLITS = (1, 2, 3)
_NAME = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)\.\w+")


def read_classes(path: Path) -> list[str]:
    """Class names in ``classInd.txt`` order (index i + 1 on line i + 1)."""
    names: list[str] = []
    for line, text in read_lines(path, "UCF101 class index"):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise InputError(f"{path}:{line}: expected '<index> <ClassName>', got {text!r}")
        if int(parts[0]) != len(names) + 1:
            raise InputError(f"{path}:{line}: class index {parts[0]}, expected {len(names) + 1} "
                             "(indices count up from 1)")
        if parts[1] in names:
            raise InputError(f"{path}:{line}: class {parts[1]!r} listed twice")
        names.append(parts[1])
    if not names:
        raise InputError(f"{path}: no classes listed")
    return names


def read_list(path: Path, classes: list[str], train: bool) -> list[tuple[str, str]]:
    """(video path relative to UCF-101/, class name) of one train or test list."""
    index = {name: i + 1 for i, name in enumerate(classes)}
    rows = []
    for line, text in read_lines(path, "UCF101 split list"):
        parts = text.split()
        want = 2 if train else 1
        if len(parts) != want:
            form = "'<Class>/<video>.avi <class index>'" if train else "'<Class>/<video>.avi'"
            raise InputError(f"{path}:{line}: expected {form}, got {text!r}")
        rel = PurePosixPath(parts[0].replace("\\", "/"))
        if len(rel.parts) != 2 or rel.is_absolute() or ".." in rel.parts:
            raise InputError(f"{path}:{line}: expected '<Class>/<video>', got {parts[0]!r}")
        name = rel.parts[0]
        if name not in index:
            raise InputError(f"{path}:{line}: class folder {name!r} is not in classInd.txt")
        if train and (not parts[1].isdigit() or int(parts[1]) != index[name]):
            raise InputError(f"{path}:{line}: class index {parts[1]!r} does not match "
                             f"{name!r} (index {index[name]} in classInd.txt)")
        rows.append((rel.as_posix(), name))
    return rows


def read(cfg) -> Layout:
    root = Path(cfg.input)
    if cfg.split_lists:  # input = the folder of the class folders, the lists elsewhere
        videos, lists = root, Path(cfg.split_lists)
        if not lists.is_dir():
            raise InputError(f"split_lists={cfg.split_lists}: no such folder (the folder of "
                             f"classInd.txt and the train/test lists, {LISTS}/ as unpacked)")
        if not videos.is_dir():
            raise InputError(f"input {root}: no such folder (with split_lists set, input is "
                             "the folder of the class folders)")
    else:
        videos, lists = root / VIDEOS, root / LISTS
    if not (videos.is_dir() and lists.is_dir()):
        raise InputError(f"input {root}: a UCF101 layout holds {VIDEOS}/ and {LISTS}/ "
                         "(the folders the two official archives unpack to); when they are "
                         "elsewhere, set input=<the class folders' folder> split_lists=<the lists' folder>")
    split = 1 if cfg.split is None else cfg.split
    if split not in SPLITS:
        raise ConfigError(f"split={split}: UCF101 has splits 1, 2 and 3")
    classes = read_classes(lists / "classInd.txt")
    train = read_list(lists / f"trainlist0{split}.txt", classes, True)
    test = read_list(lists / f"testlist0{split}.txt", classes, False)
    try:
        on_disk = {it.path: it for it in read_corpus(str(videos), cfg.extensions, True)}
    except InputError:  # no video at all: check_found says so, naming the lists
        on_disk = {}
    by_lower = {p.lower(): p for p in on_disk}  # the lists' case differs from some names
    subsets: dict[str, list[InputItem]] = {"train": [], "test": []}
    seen: dict[str, str] = {}
    for subset, rows, where in (("train", train, f"trainlist0{split}.txt"),
                                ("test", test, f"testlist0{split}.txt")):
        for rel, name in rows:
            rel = by_lower.get(rel.lower(), rel) if rel not in on_disk else rel
            if rel in seen:
                raise InputError(f"{lists / where}: {rel} is also in {seen[rel]}")
            seen[rel] = where
            subsets[subset].append(_item(videos, rel, name))
    check_found("ucf101", videos, lists, sorted(seen), set(on_disk))
    unused = [unused_entry(p, "not_in_split", f"in neither list of split {split}")
              for p in sorted(on_disk) if p not in seen]
    for items in subsets.values():
        items.sort(key=lambda it: it.path)
    return Layout("ucf101", classes, subsets, unused, defaults={"require_audio": False},
                  info={"split": split, "lists": [f"{cfg.split_lists or LISTS}/trainlist0{split}.txt",
                                                  f"{cfg.split_lists or LISTS}/testlist0{split}.txt"]})


def _item(videos: Path, rel: str, name: str) -> InputItem:
    m = _NAME.fullmatch(PurePosixPath(rel).name)
    extra = {"group": int(m["group"]), "clip": int(m["clip"])} if m else {}
    return InputItem(path=rel, abspath=str(videos / rel), identity=rel, label=name, extra=extra)
