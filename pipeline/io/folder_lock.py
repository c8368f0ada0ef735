"""One run owns an output folder at a time: ``with hold(out, "train"): ...``.

Two runs writing the same folder interleave their outputs (every step twice in
``metrics.jsonl``, one run's ``config.yaml`` beside the other's weights), so every stage
that writes a folder takes an exclusive ``flock`` on a lock file in it, and a second run
fails at once with one line naming the folder and the holder (stage, pid, host, since).

Why ``flock``: the kernel releases it when the holder dies, however it dies (``kill -9``,
OOM, a node reboot for NFS once its lease ends), so a crashed run never leaves the folder
stuck and there is no stale-lock heuristic to get wrong. Why the file is removed on
release: a finished run leaves no dot-file behind; a waiter that opened the removed file
sees (by inode) that it locked a file no longer in the folder and tries again.

Shared holds (``shared=True``) are for runs that write disjoint parts of one folder by
design (array tasks of one protocol, ``only=i``): they coexist, and exclude an exclusive
run of the whole folder. A SLURM requeue of the same job (same ``SLURM_JOB_ID``) waits
for its earlier attempt's lock to be released (on a shared filesystem that can outlive
the killed attempt by a lease time) instead of failing. Re-entering a hold the process
already has (``cluster`` around the training engine) is free.

The lock file is not an output: it holds the holder's description for error messages
only, and is written in place (no temporary + rename: the lock lives on the inode).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from pipeline.errors import InputError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
REQUEUE_WAIT_S = 300.0  # longest wait for an earlier attempt of the same SLURM job
# lock path -> [fd, shared, depth]. Module state on purpose: it mirrors the kernel's table of
# the flocks this process holds (one per open file, shared by fork), which is process-wide
# too; re-entry within the process and the after-fork release below both need to see it.
_held: dict[str, list] = {}


def _forget_in_child() -> None:
    """A forked child (a DataLoader or process-pool worker) must not keep its parent's
    locks: a flock belongs to the open file, which fork shares, so a worker outliving a
    killed run would keep the folder busy. Closing the child's copy leaves the parent's
    lock as it is (only an explicit unlock, or the last close, releases it)."""
    for fd, _, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class FolderBusy(InputError):
    """Another run holds the folder."""


def _describe(stage: str) -> dict:
    return {"stage": stage, "pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "slurm_job": os.environ.get("SLURM_JOB_ID", "")}


def _holder(fd: int) -> dict:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        info = {}
    return info if isinstance(info, dict) else {}


def _holder_text(info: dict) -> str:
    if not info.get("pid"):
        return "another run (shared, e.g. protocol parts run as array tasks)"
    job = f", SLURM job {info['slurm_job']}" if info.get("slurm_job") else ""
    return f"{info.get('stage', '?')} run, pid {info['pid']} on host {info.get('host', '?')}{job}, since {info.get('since', '?')}"


def _try(path: Path, shared: bool, wait: bool = False) -> tuple[int | None, dict]:
    """(fd holding the lock, {}) or (None, holder description)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            info = _holder(fd)
            os.close(fd)
            return None, info
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, {}
        os.close(fd)  # the holder removed the file as we opened it: lock the new one


@contextlib.contextmanager
def hold(folder: str | os.PathLike, stage: str, shared: bool = False, name: str = LOCK_NAME,
         enabled: bool = True, wait: bool = False, label: str | os.PathLike | None = None) -> Iterator[None]:
    """Own ``folder`` (created if missing) for the block; FolderBusy if another run does.

    ``name``: the lock file's name in ``folder`` (a stage that replaces the folder itself
    locks a file beside it; one that writes a single file locks that file's name).
    ``wait``: block until the holder lets go (for a step that several runs may need and
    only one should do, e.g. exporting a backbone they share). ``label``: what the error
    names as owned (default ``folder``; e.g. the export folder whose lock lives beside it)."""
    if not enabled:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    key = os.path.realpath(path)
    if key in _held:
        entry = _held[key]
        if entry[1] and not shared:
            raise FolderBusy(f"{folder}: this process holds it shared and cannot take it whole")
        entry[2] += 1
        try:
            yield
        finally:
            entry[2] -= 1
        return
    fd, info = _try(path, shared, wait)
    job = os.environ.get("SLURM_JOB_ID", "")
    if fd is None and job and info.get("slurm_job") == job:
        log.warning("%s: waiting (at most %.0f s) for the earlier attempt of SLURM job %s to release it",
                    folder, REQUEUE_WAIT_S, job)
        deadline = time.monotonic() + REQUEUE_WAIT_S
        while fd is None and time.monotonic() < deadline and info.get("slurm_job") == job:
            time.sleep(1.0)  # a lease running out: no event to wait on across hosts
            fd, info = _try(path, shared)
    if fd is None:
        raise FolderBusy(f"{label or folder}: in use by {_holder_text(info)}; wait for it to finish, stop it, "
                         f"or choose another output folder")
    if not shared:
        # in place on purpose: the flock is on this file's inode, so a temp + rename would put
        # the holder's description in a file nobody locks; readers treat it as advisory text
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_describe(stage)).encode(), 0)
    _held[key] = [fd, shared, 1]
    try:
        yield
    finally:
        del _held[key]
        _release(fd, path)


def _release(fd: int, path: Path) -> None:
    """Remove the lock file if no one else holds it, then let go."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # shared holders still there: keep it
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.unlink(path)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def holds(folder: str | os.PathLike, name: str = LOCK_NAME) -> bool:
    """True when this process holds ``folder`` (for code that must run inside a hold)."""
    return os.path.realpath(Path(folder) / name) in _held
