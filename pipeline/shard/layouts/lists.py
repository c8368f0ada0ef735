"""Split lists that name no video on disk: say where the names were looked for and where
the videos are, before anything is written.

The official UCF101 and HMDB51 archives unpack to a videos folder and a split-lists
folder that users arrange in more than one way (the class folders one level down, in
``videos/``, is common). When the lists name videos but none of them is where the layout
looks, sharding would write an empty corpus and exit 0 ("train complete: 0 videos"):
instead the layout stops with one line naming the folder searched, an example name, and
where videos were found, with the settings that would read them.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError


def _tail(path: str) -> str:
    """``<class>/<video>`` of a path, case folded (UCF101's lists and files differ in case)."""
    return "/".join(PurePosixPath(path).parts[-2:]).lower()


def check_found(dataset: str, videos: Path, lists: Path, listed: list[str], on_disk: set[str]) -> None:
    """InputError when ``listed`` (paths relative to ``videos``) is not empty and none of
    it is in ``on_disk`` (the videos found below ``videos``, same form)."""
    if not listed:
        return
    lower = {p.lower() for p in on_disk}
    if any(p in on_disk or p.lower() in lower for p in listed):
        return
    head = (f"dataset={dataset}: none of the {len(listed)} videos named in {lists} is under {videos} "
            f"(looked for {videos}/<class>/<video>, e.g. {videos / listed[0]})")
    if not on_disk:
        raise InputError(f"{head}; no videos found under {videos} at all")
    wanted = {_tail(p) for p in listed}
    prefixes = Counter(str(PurePosixPath(p).parent.parent) for p in on_disk if _tail(p) in wanted)
    if prefixes:
        prefix, n = prefixes.most_common(1)[0]
        where = videos / prefix
        raise InputError(f"{head}; {n} of them are in class folders under {where}: set "
                         f"input={where} split_lists={lists}")
    folders = Counter(str(videos / PurePosixPath(p).parent) for p in on_disk)
    found = ", ".join(f"{f} ({n})" for f, n in folders.most_common(3))
    raise InputError(f"{head}; {len(on_disk)} video(s) found there, none of them listed: "
                     f"most in {found}")
