"""A folder that appears whole or not at all: built aside, then swapped in by rename.

``with build_aside(dest) as tmp: ...write into tmp...`` builds in a hidden sibling of
``dest`` (same filesystem, so the rename never copies), fsyncs every file and folder in
it, and only then puts it at ``dest``. A killed writer leaves ``dest`` as it was (the
old folder whole, or nothing) plus a hidden sibling that the next build removes.

Replacing an existing ``dest`` is one ``renameat2(RENAME_EXCHANGE)`` where the kernel and
filesystem offer it (Linux >= 3.15 on ext4, xfs, btrfs, tmpfs), so a reader sees the old
folder or the new one, never neither; elsewhere (NFS, other systems) it is two renames,
and an interruption between them leaves no ``dest`` at all (never a mix).

The caller must own ``dest`` (``pipeline.io.folder_lock``): the stale siblings removed
at the start are only stale because no other writer can be building them.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from pipeline.io.atomic import fsync_dir

_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _prefixes(dest: Path) -> tuple[str, str]:
    return f".{dest.name}.building-", f".{dest.name}.old-"


def remove_stale(dest: Path) -> list[Path]:
    """Remove what an interrupted build of ``dest`` left beside it; returns what it removed."""
    gone = []
    if dest.parent.is_dir():
        for p in dest.parent.iterdir():
            if p.name.startswith(_prefixes(dest)) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
    return gone


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (the data before the rename that shows it)."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(folder)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def swap_in(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest``, replacing what was there whole."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(tmp, dest)
    elif _exchange(tmp, dest):
        shutil.rmtree(tmp)  # now the old folder
    else:
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=_prefixes(dest)[1]))
        os.rename(dest, old / dest.name)
        os.rename(tmp, dest)
        shutil.rmtree(old)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def build_aside(dest: str | os.PathLike, may_replace: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``dest``; on a clean exit it becomes ``dest``.

    ``may_replace(dest)``: called when ``dest`` exists; False refuses to replace it
    (a folder that is not ours to throw away) with FileExistsError."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and may_replace is not None and not may_replace(dest):
        raise FileExistsError(dest)
    remove_stale(dest)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=_prefixes(dest)[0]))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the export is for whoever reads it
        fsync_tree(tmp)
        swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
