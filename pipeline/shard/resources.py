"""Out of disk, quota, file size or file handles: the machine's fault, never the input's.

An input's status ("failed: decode_error", ...) is permanent: a complete shard is never
redone, so a good video marked failed because the disk filled up while it was being
written would be lost for good. Any error that comes from the machine's limits rather than
from the input's bytes therefore stops the shard instead (:class:`OutOfResources`): the
shard is not committed, the run exits with one line, and the re-run, once the disk has
room, redoes the shard from scratch with the same bytes.

Where the error comes from decides how it is recognised:

* Python and the OS (our writes, ``open``, ``fork``): an ``OSError`` whose ``errno`` is in
  :data:`RESOURCE_ERRNOS`, or a ``MemoryError``.
* ffmpeg (its own writes of segments and audio): a line of its stderr that ends with the
  system's message for one of :data:`FFMPEG_ERRNOS` (ffmpeg prints ``strerror``), or its
  death by ``SIGXFSZ`` (``ulimit -f``). ffmpeg's "Cannot allocate memory" is left out on
  purpose: libavutil refuses allocations beyond its own cap with that same code, so a
  crafted header produces it on any machine, and it stays the input's status; a machine
  really out of memory kills ffmpeg (or a worker) instead, which fails the run.
* PyAV (the in-process encoder): its errors carry an ``errno`` too; ENOMEM from it is the
  input's for the same reason as ffmpeg's.
"""
from __future__ import annotations

import errno
import os
import signal

from pipeline.errors import InputError

# what only the machine can cause: space, quota, file size limit, a read-only filesystem,
# file handles and processes
FFMPEG_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EMFILE, errno.ENFILE)
RESOURCE_ERRNOS = frozenset(FFMPEG_ERRNOS + (errno.ENOMEM, errno.ENOBUFS, errno.EAGAIN))
ADVICE = ("the machine's fault, not the input's: the shard is not committed; free the resource "
          "(disk space, quota, ulimit, file handles, memory) and re-run to redo it")


class OutOfResources(InputError):
    """The machine ran out of something while a shard was written: fail the shard."""


def resource_errno(exc: BaseException | None) -> int | None:
    """The resource errno behind ``exc`` (or behind what caused it), else None."""
    try:
        import av
        av_error: type = av.error.FFmpegError
    except ImportError:  # pragma: no cover - PyAV is a dependency of the shard stage
        av_error = ()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "errno", None)
        from_av = isinstance(exc, av_error)
        if isinstance(exc, MemoryError) and not from_av:
            return errno.ENOMEM
        if code in RESOURCE_ERRNOS and not (from_av and code == errno.ENOMEM):
            return code
        exc = exc.__cause__ or exc.__context__
    return None


def ffmpeg_resource_error(stderr: str, returncode: int, names: tuple[str, ...] = ()) -> str | None:
    """The line of a finished ffmpeg that says the machine ran out, else None. ``names``
    (the input's paths) are removed first: a file may be called "No space left on device"."""
    if returncode == -signal.SIGXFSZ:
        return f"ffmpeg killed by SIGXFSZ: {os.strerror(errno.EFBIG)} (ulimit -f)"
    endings = tuple(os.strerror(code) for code in FFMPEG_ERRNOS)
    for line in stderr.splitlines():
        text = line
        for name in names:
            text = text.replace(name, "") if name else text
        if text.rstrip().rstrip(".").endswith(endings):
            return line.strip()[-300:]
    return None


def describe(exc: BaseException) -> str:
    """One line: the system's message for the resource, and what raised it."""
    code = resource_errno(exc)
    head = os.strerror(code) if code else "out of resources"
    text = str(exc)
    return head if not text or text == head else f"{head} ({text[-300:]})"
