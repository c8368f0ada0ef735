"""Folders whose files get unpickled must be the user's own.

DeepSpeed checkpoints and submitit's job files are pickles: loading one runs whatever
code its author put in it. They are trusted inputs, and this is how that trust is
checked before anything is read: the folder and every file in it belong to the user
running the program, and nobody else may write to them. (A hash manifest written beside
the files catches damage, not an author: whoever can write the files can write it too.)
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from pipeline.errors import InputError


def untrusted_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` may not be trusted (another owner, writable by others), or None."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & stat.S_IWOTH:
        return f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _tree(folder: Path):
    """``folder``, then everything below it (symbolic links reported, never followed)."""
    yield folder
    if folder.is_dir() and not folder.is_symlink():
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in sorted(dirnames) + sorted(filenames):
                yield Path(dirpath) / name


def require_own(paths: Iterable[str | os.PathLike], what: str) -> None:
    """InputError unless every one of ``paths`` passes ``untrusted_reason``."""
    for path in paths:
        why = untrusted_reason(path)
        if why:
            raise InputError(f"{path}: {why}; refusing to load {what} from it (its pickles "
                             "could run code). Use a folder only you can write to.")


def require_own_folder(folder: str | os.PathLike, what: str) -> None:
    """``require_own`` for ``folder`` and everything below it."""
    require_own(_tree(Path(folder)), what)
