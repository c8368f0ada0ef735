"""Every file the project writes goes through here: temporary name + fsync + rename.

A reader (or a resumed run) then sees either the old file or the whole new one, never a
truncated one, whatever kills the writer (``kill -9``, a full disk, ``ulimit -f``). The
temporary file lives in the destination folder, so the rename never crosses a filesystem.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

DEFAULT_MODE = 0o644  # mkstemp makes files private; outputs are for whoever reads the folder


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", file_mode: int = DEFAULT_MODE,
                **kwargs: Any) -> Iterator[IO]:
    """``open`` for writing that only replaces ``path`` once the block ends without error.

    ``mode`` is "w" or "wb" (plus ``open``'s text options such as ``newline``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode == "w":
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes, file_mode: int = DEFAULT_MODE) -> Path:
    with atomic_open(path, "wb", file_mode) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, file_mode: int = DEFAULT_MODE) -> Path:
    with atomic_open(path, "w", file_mode) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> Path:
    return write_text(path, json.dumps(obj, indent=indent))


def temp_path(path: str | os.PathLike) -> Path:
    """A private temporary name next to ``path`` for writers that need a file name
    (encoders, ``np.savez``, tarfile); pair with ``commit``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def commit(tmp: str | os.PathLike, path: str | os.PathLike, file_mode: int = DEFAULT_MODE) -> Path:
    """fsync ``tmp`` (from ``temp_path``) and rename it over ``path``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.chmod(tmp, file_mode)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)
    return Path(path)


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> Path:
    """safetensors' ``save_file`` through a temporary file (it writes by name)."""
    from safetensors.torch import save_file

    tmp = temp_path(path)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
    except BaseException:
        os.unlink(tmp)
        raise
    return commit(tmp, path)


def save_npz(path: str | os.PathLike, arrays: dict, compressed: bool = True) -> Path:
    """``np.savez(_compressed)`` through a temporary file (numpy writes by name)."""
    import numpy as np

    tmp = temp_path(path)
    with open(tmp, "wb") as fh:  # a file object: numpy would append ".npz" to a name
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return commit(tmp, path)


def commit_together(items: Sequence[tuple[str | os.PathLike, Callable[[IO[bytes]], None]]],
                    file_mode: int = DEFAULT_MODE) -> None:
    """Write several files as one step: every ``write(fh)`` into its own temporary, all
    fsynced, and only then all renamed (in order: put the one readers check last). A
    failure while writing (a full disk, ``ulimit -f``) replaces none of them, so results
    and the config that made them never disagree; only a kill between the renames (no
    allocation, microseconds) could split them."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, write in items:
            tmp = temp_path(path)
            temps.append((tmp, Path(path)))
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, file_mode)
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for tmp, path in temps:
        os.replace(tmp, path)
    for folder in {p.parent for _, p in temps}:
        fsync_dir(folder)


def text_writer(text: str) -> Callable[[IO[bytes]], None]:
    return lambda fh: fh.write(text.encode("utf-8"))


def json_writer(obj: Any, indent: int | None = 1) -> Callable[[IO[bytes]], None]:
    return text_writer(json.dumps(obj, indent=indent))
