"""A tar shard whose bytes depend only on its members: fixed order, times and owners.

Resume after ``kill -9`` must give the same bytes as an uninterrupted run, so nothing of
the writing process (time, user, umask) may leak into the archive. The file is written
under a temporary name private to this process and renamed into place when complete, so a
reader never sees a partial shard under the final name.
"""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from pipeline.io.atomic import commit, temp_path

MTIME = 946684800  # 2000-01-01: any constant; 0 confuses some tar tools


class DeterministicTar:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self._tf = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)
        self.members = 0

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), MTIME, 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tf.addfile(info, io.BytesIO(data))
        self.members += 1

    def close(self) -> int:
        """Finish, fsync and rename into place; returns the shard's size in bytes."""
        self._tf.close()
        return commit(self.tmp, self.path).stat().st_size

    def abort(self) -> None:
        try:
            self._tf.close()
        finally:
            self.tmp.unlink(missing_ok=True)
