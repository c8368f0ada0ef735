"""A full disk is the machine's fault, not the video's (issue 26, item 1): the shard stage
on a real small filesystem (a tmpfs mounted here; where mounting is impossible, a real
``ulimit -f`` on the child instead) with real ffmpeg and real writes.

What must hold: the run exits 1 with one line (no traceback), no shard is committed with
a good video marked failed, and the re-run, once there is room, shards every video.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shard.resources import ffmpeg_resource_error, resource_errno

ROOT = Path(__file__).resolve().parents[2]
VIDEO = Path(__file__).resolve().parents[1] / "data" / "bunny_6ch.mp4"  # 2.2 s with audio: 2 clips of 1 s
SMALL = ["holdout=0", "short_side=32", "clip_seconds=1", "videos_per_shard=4", "--quiet"]
N_VIDEOS = 8  # 16 clips: 512 KB of 16 kHz WAV alone, whatever the encoders make of the video


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Eight good videos in two class folders."""
    root = tmp_path / "corpus"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(N_VIDEOS // 2):
            shutil.copy(VIDEO, root / cls / f"{cls}{i}.mp4")
    return root


@contextlib.contextmanager
def small_fs(folder: Path, kib: int):
    """A tmpfs of ``kib`` KiB at ``folder``; yields a function that enlarges it, or None
    when this process may not mount (then the caller limits file sizes instead)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                             capture_output=True)
    except OSError:  # no mount command
        res = None
    if res is None or res.returncode != 0:
        yield None
        return

    def enlarge(new_kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_kib}k", str(folder)], check=True)
    try:
        yield enlarge
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def shard(*args: str, fsize: int | None = None) -> subprocess.CompletedProcess:
    """The shard stage as a user runs it: its own process, optionally under ``ulimit -f``."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))) if fsize else None
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline", "shard", *args, *SMALL], cwd=ROOT,
                          env=env, capture_output=True, text=True, preexec_fn=limit, timeout=600)


def committed(out: Path) -> list[dict]:
    """The input entries of every shard committed in ``out`` (stats file present)."""
    return [e for p in sorted(out.glob("*.stats.json")) for e in json.loads(p.read_text())["inputs"]]


def assert_one_line_failure(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert lines[-1].startswith("error: ") and "not committed" in lines[-1], lines[-1]
    assert any(s in lines[-1] for s in ("No space left on device", "File too large", "SIGXFSZ")), lines[-1]


def assert_complete(out: Path) -> None:
    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["videos"] == index["totals"]["inputs"] == N_VIDEOS, index["totals"]
    assert index["totals"]["failed"] == 0 and index["totals"]["clips"] == 2 * N_VIDEOS


def test_a_full_output_disk_fails_the_shard_and_the_rerun_redoes_it(corpus, tmp_path):
    mnt = tmp_path / "small"
    out = mnt / "out"
    with small_fs(mnt, 400) as enlarge:  # room for about one of the two shards
        res = shard(f"input={corpus}", f"output={out}", "workers=1",
                    fsize=None if enlarge else 200_000)
        assert_one_line_failure(res)
        # what was committed holds only good videos, each marked ok
        assert all(e["status"] == "ok" for e in committed(out)), committed(out)
        assert not (out / "index.json").exists()
        if enlarge:
            enlarge(8192)
        res = shard(f"input={corpus}", f"output={out}", "workers=1")
        assert res.returncode == 0, res.stderr[-3000:]
        assert_complete(out)
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_full_scratch_disk_fails_every_shard_in_the_pool(corpus, tmp_path):
    """``tmp_dir`` (decoded audio, encoded clips: ffmpeg's own writes) on a full disk:
    every input would have been 'failed'; instead both shards fail, nothing is committed."""
    mnt, out = tmp_path / "scratch", tmp_path / "out"
    with small_fs(mnt, 64) as enlarge:
        res = shard(f"input={corpus}", f"output={out}", f"tmp_dir={mnt}", "workers=2",
                    fsize=None if enlarge else 50_000)
        assert_one_line_failure(res)
        assert committed(out) == [] and not list(out.glob("*.tar"))
        if enlarge:
            enlarge(8192)
        res = shard(f"input={corpus}", f"output={out}", f"tmp_dir={mnt}", "workers=2")
        assert res.returncode == 0, res.stderr[-3000:]
        assert_complete(out)


def test_a_video_named_like_the_error_is_still_judged_on_its_bytes(tmp_path):
    """ffmpeg's messages name the file: a broken one called 'No space left on device.mp4'
    is that input's failure, not the machine's."""
    corpus = tmp_path / "corpus" / "a"
    corpus.mkdir(parents=True)
    shutil.copy(VIDEO, corpus / "good.mp4")
    (corpus / f"{os.strerror(errno.ENOSPC)}.mp4").write_bytes(VIDEO.read_bytes()[:4000])
    (corpus / f"{os.strerror(errno.EFBIG)}.mp4").write_bytes(b"not a video at all" * 100)
    out = tmp_path / "out"
    res = shard(f"input={corpus.parent}", f"output={out}", "workers=1")
    assert res.returncode == 0, res.stderr[-3000:]
    status = {e["path"]: (e["status"], e["reason"]) for e in committed(out)}
    assert status == {"a/good.mp4": ("ok", None),
                      f"a/{os.strerror(errno.ENOSPC)}.mp4": ("failed", "truncated"),
                      f"a/{os.strerror(errno.EFBIG)}.mp4": ("failed", "not_a_video")}, status


def test_which_errors_are_the_machines(tmp_path):
    # a real EMFILE from the OS: no file handle left
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    handles, caught = [], None
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 4, hard))
    try:
        for i in range(64):
            handles.append(open(tmp_path / f"f{i}", "w"))
    except OSError as err:
        caught = err
    finally:
        for fh in handles:
            fh.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert caught is not None and resource_errno(caught) == errno.EMFILE
    try:  # a wrapped one (SinkError from OSError) is found through its cause
        try:
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
        except OSError as inner:
            raise RuntimeError("writing sample k") from inner
    except RuntimeError as outer:
        assert resource_errno(outer) == errno.EDQUOT
    assert resource_errno(MemoryError()) == errno.ENOMEM
    assert resource_errno(OSError(errno.ENOENT, "gone")) is None
    assert resource_errno(ValueError("bad frame")) is None
    # ffmpeg's own lines; a file name that spells the message is not one; SIGXFSZ is
    name = f"/c/{os.strerror(errno.ENOSPC)}"
    assert ffmpeg_resource_error(f"Error opening input file file:{name}\n", 1, (name,)) is None
    assert ffmpeg_resource_error("Error writing trailer of x.mp4: No space left on device\n", 1)
    assert ffmpeg_resource_error("[mp3 @ 0x5] Cannot allocate memory\n", 1) is None  # libav's own cap
    assert "SIGXFSZ" in ffmpeg_resource_error("", -25)
