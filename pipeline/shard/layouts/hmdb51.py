"""HMDB51 as distributed: ``<class>/<video>.avi`` + ``testTrainMulti_7030_splits/``.

``split_lists=FOLDER`` names the split lists' folder when it is not inside ``input``
(e.g. the class folders unpacked into ``INPUT/videos/``: ``input=INPUT/videos
split_lists=INPUT/testTrainMulti_7030_splits``). When no listed video is found, the
layout stops before anything is written, saying where it looked and where videos are.

Each class has ``<class>_test_split{1,2,3}.txt``; a line is ``<video>.avi <id>`` with
id 1 = train, 2 = test, 0 = not used by that split. Split ``k`` shards the 1s into
``output/train/`` and the 2s into ``output/test/``; a 0 is listed as ``skipped:
unused_in_split``, a video on disk that no split file names as ``skipped: not_in_split``,
a named video missing on disk gets ``failed: missing``. Classes are the split files'
class names, sorted. Many HMDB51 videos have no sound: clips are video-only by default.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.shard.corpus import InputItem, read_corpus
from pipeline.shard.layouts.layout import Layout, read_lines, unused_entry
from pipeline.shard.layouts.lists import check_found

LISTS = "testTrainMulti_7030_splits"
SPLITS = (1, 2, 3)
SUBSET = {"1": "train", "2": "test"}


def split_files(lists: Path, split: int) -> dict[str, Path]:
    """class name -> its split file for ``split``."""
    suffix = f"_test_split{split}.txt"
    files = {p.name[: -len(suffix)]: p for p in sorted(lists.iterdir())
             if p.name.endswith(suffix) and len(p.name) > len(suffix)}
    if not files:
        raise InputError(f"{lists}: no <class>{suffix} files")
    return files


def read_split_file(path: Path) -> list[tuple[str, str]]:
    """(video file name, id) rows; id is '0', '1' or '2'."""
    rows = []
    for line, text in read_lines(path, "HMDB51 split file"):
        name, _, tag = text.rpartition(" ")
        name = name.strip()
        if not name or tag not in ("0", "1", "2"):
            raise InputError(f"{path}:{line}: expected '<video>.avi <0|1|2>', got {text!r}")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise InputError(f"{path}:{line}: {name!r} is not a file name inside the class folder")
        rows.append((name, tag))
    return rows


def read(cfg) -> Layout:
    root = Path(cfg.input)
    lists = Path(cfg.split_lists) if cfg.split_lists else root / LISTS
    if cfg.split_lists and not lists.is_dir():
        raise InputError(f"split_lists={cfg.split_lists}: no such folder (the folder of the "
                         f"<class>_test_split<k>.txt files, {LISTS}/ as unpacked)")
    if not lists.is_dir():
        raise InputError(f"input {root}: an HMDB51 layout holds the class folders and {LISTS}/ "
                         "(the folder the official split archive unpacks to); when the split "
                         "lists are elsewhere, set split_lists=FOLDER")
    if not root.is_dir():
        raise InputError(f"input {root}: no such folder (the folder of the class folders)")
    split = 1 if cfg.split is None else cfg.split
    if split not in SPLITS:
        raise ConfigError(f"split={split}: HMDB51 has splits 1, 2 and 3")
    files = split_files(lists, split)
    classes = sorted(files)
    try:
        found = read_corpus(str(root), cfg.extensions, True)
    except InputError:  # no video at all: check_found says so, naming the lists
        found = []
    on_disk = {it.path for it in found if not it.path.startswith(f"{LISTS}/")}
    subsets: dict[str, list[InputItem]] = {"train": [], "test": []}
    unused, seen = [], {}
    for name in classes:
        for video, tag in read_split_file(files[name]):
            rel = f"{name}/{video}"
            if rel in seen:
                raise InputError(f"{files[name]}: {video} listed twice")
            seen[rel] = tag
            if tag == "0":
                unused.append(unused_entry(rel, "unused_in_split", f"0 in {files[name].name}"))
            else:
                subsets[SUBSET[tag]].append(InputItem(path=rel, abspath=str(root / rel),
                                                      identity=rel, label=name))
    check_found("hmdb51", root, lists, sorted(seen), on_disk)
    unused += [unused_entry(p, "not_in_split", f"no {lists.name}/*_test_split{split}.txt names it")
               for p in sorted(on_disk) if p not in seen]
    for items in subsets.values():
        items.sort(key=lambda it: it.path)
    unused.sort(key=lambda e: e["path"])
    return Layout("hmdb51", classes, subsets, unused, defaults={"require_audio": False},
                  info={"split": split, "lists": f"{cfg.split_lists or LISTS}/<class>_test_split{split}.txt"})
