"""Two runs on one output folder (issue 26, item 2): the second gets one clear line, a
crashed run leaves nothing stuck, a SLURM requeue of the same job takes over, array parts
share. Real processes, coordinated through pipes (a line read, stdin closed), never a timer.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shard_util import TINY_MODEL
from pipeline.io.folder_lock import FolderBusy, hold

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [*TINY_MODEL, "loader.batch_size=4", "loader.workers=0", "loader.epoch_batches=4", "loader.clip.frames=4",
         "loader.video.size=32", "loader.audio.seconds=0.5", "gdt.reversal=off", "gdt.shift=off",
         "loader.clip.reverse=false", "tensorboard=false", "log_every=1", "threads=1"]
# holds the lock through the real training engine: after the first step it says so on
# stdout and waits (inside the run) until its stdin closes or it is killed
HOLDER = textwrap.dedent("""
    import sys
    from pipeline.config import load_config
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train

    def pause():
        print("training", flush=True)
        sys.stdin.readline()
        return True

    train(load_config(TrainConfig, [], sys.argv[1:]), stop_requested=pause)
""")
# takes the lock directly, says so, waits for stdin to close
LOCKER = textwrap.dedent("""
    import logging, sys
    from pipeline.io.folder_lock import hold
    logging.basicConfig(level=logging.INFO)
    with hold(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
        print("held", flush=True)
        sys.stdin.readline()
""")


def env(**extra: str) -> dict:
    e = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
         "OMP_NUM_THREADS": "1", **extra}
    e.pop("SLURM_JOB_ID", None)
    e.update(extra)
    return e


def start(code: str, *args: str, log: Path | None = None, **extra: str) -> subprocess.Popen:
    """``log``: its stderr to that file (a chatty child must never block on a full pipe)."""
    err = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=err, text=True, env=env(**extra), cwd=ROOT)


def said(stream, line: str) -> bool:
    """Read ``stream`` until ``line`` (True) or its end (False): the child tells where it is."""
    for got in stream:
        if got.rstrip("\n") == line:
            return True
    return False


def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args, "--quiet"], capture_output=True, text=True,
                          env=env(**extra), cwd=ROOT)


def test_two_trainings_on_one_folder(synth_shards, tmp_path):
    out = tmp_path / "run"
    args = [f"out={out}", f"loader.shards={synth_shards}", *TRAIN]
    first = start(HOLDER, *args, "steps=1000", log=tmp_path / "first.log")
    assert said(first.stdout, "training"), (tmp_path / "first.log").read_text()
    rows_before = (out / "metrics.jsonl").read_text()
    second = cli("train", *args, "steps=2")
    assert second.returncode == 1
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in second.stderr, second.stderr
    assert err[0].startswith(f"error: {out}: in use by train run, pid {first.pid} on host {socket.gethostname()}")
    assert (out / "metrics.jsonl").read_text() == rows_before  # the second wrote nothing
    # other stages that would write into the folder are refused alike
    synth = cli("synth", f"out={out}", "n_videos=2", "n_classes=2")
    assert synth.returncode == 1 and f"{out}: in use by train run, pid {first.pid}" in synth.stderr
    assert not (out / "manifest.jsonl").exists()
    first.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
    first.wait()
    third = cli("train", *args, "steps=2", "ckpt.resume=none")
    assert third.returncode == 0, third.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 2  # each step once
    assert not (out / ".lock").exists()  # a finished run leaves no lock file


def test_a_requeued_slurm_job_takes_over_from_its_earlier_attempt(tmp_path):
    out = tmp_path / "run"
    earlier = start(LOCKER, str(out), "train", "whole", SLURM_JOB_ID="4242")
    assert earlier.stdout.readline() == "held\n", earlier.stderr.read()
    other = start(LOCKER, str(out), "train", "whole", SLURM_JOB_ID="999")
    assert other.wait() == 1 and "SLURM job 4242" in other.stderr.read()
    requeued = start(LOCKER, str(out), "train", "whole", SLURM_JOB_ID="4242")
    line = requeued.stderr.readline()
    while "waiting" not in line and line:  # the requeued attempt waits for the earlier one
        line = requeued.stderr.readline()
    assert "earlier attempt of SLURM job 4242" in line
    earlier.stdin.close()  # the earlier attempt ends
    assert earlier.wait() == 0
    assert requeued.stdout.readline() == "held\n"
    requeued.stdin.close()
    assert requeued.wait() == 0


def test_array_parts_share_a_folder_and_exclude_a_whole_run(tmp_path):
    out = tmp_path / "eval"
    part = start(LOCKER, str(out), "eval", "shared")
    assert part.stdout.readline() == "held\n", part.stderr.read()
    with hold(out, "eval", shared=True):  # another part: both run
        pass
    with pytest.raises(FolderBusy, match="shared"):
        with hold(out, "eval"):
            pass
    part.stdin.close()
    assert part.wait() == 0
    with hold(out, "eval"):  # the parts are done: the whole folder is free
        assert (out / ".lock").exists()
    assert not (out / ".lock").exists()


def test_a_process_reenters_its_own_hold(tmp_path):
    """cluster holds its folder around the training engine, which takes it again."""
    with hold(tmp_path, "cluster"):
        with hold(tmp_path, "train"):
            info = json.loads((tmp_path / ".lock").read_text())
        assert info["stage"] == "cluster" and info["pid"] == os.getpid()
        assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()


# the real shard command, stopped before it writes its first shard: it says so and waits
PAUSED_SHARD = textwrap.dedent("""
    import sys
    import pipeline.shard.driver as stage
    real = stage._execute
    def paused(*args, **kwargs):
        print("sharding", flush=True)
        sys.stdin.readline()
        return real(*args, **kwargs)
    stage._execute = paused
    from pipeline.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_shard_slices_share_a_folder_and_a_slice_runs_once(synth_corpus, tmp_path):
    out = tmp_path / "shards"
    args = [f"input={synth_corpus / 'manifest.jsonl'}", f"output={out}", "videos_per_shard=6", "clip_seconds=3",
            "short_side=64", "workers=1"]
    first = start(PAUSED_SHARD, "shard", *args, "slice=0/2", "--quiet", log=tmp_path / "first.log")
    assert said(first.stdout, "sharding"), (tmp_path / "first.log").read_text()
    again = cli("shard", *args, "slice=0/2")  # the same slice twice: refused
    assert again.returncode == 1
    err = again.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}: in use by shard slice 0/2 run, pid {first.pid}"), err
    other = cli("shard", *args, "slice=1/2")  # the other slice of the array runs beside it
    assert other.returncode == 0, other.stderr
    assert len(list(out.glob("*.tar"))) == 2 and not (out / "index.json").exists()
    synth = cli("synth", f"out={out}", "n_videos=2", "n_classes=2")  # a stage taking the folder whole
    assert synth.returncode == 1 and f"{out}: in use by another run (shared" in synth.stderr, synth.stderr
    first.stdin.close()
    assert first.wait() == 0, (tmp_path / "first.log").read_text()
    assert json.loads((out / "index.json").read_text())["totals"]["clips"] == 24
    assert not [p.name for p in out.iterdir() if p.name.endswith(".lock")]  # none left behind


# holds the folder, forks a worker (as a DataLoader or process pool does) that outlives it
FORKING_LOCKER = textwrap.dedent("""
    import multiprocessing as mp, sys
    from pipeline.io.folder_lock import hold

    def worker(conn):
        conn.send("worker up")
        conn.recv()  # until the test lets it go

    with hold(sys.argv[1], "train"):
        parent, child = mp.get_context("fork").Pipe()
        mp.get_context("fork").Process(target=worker, args=(child,), daemon=False).start()
        assert parent.recv() == "worker up"
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_forked_worker_of_a_killed_run_does_not_keep_the_folder(tmp_path):
    out = tmp_path / "run"
    run = start(FORKING_LOCKER, str(out), log=tmp_path / "run.log")
    assert run.stdout.readline() == "held\n", (tmp_path / "run.log").read_text()
    with pytest.raises(FolderBusy, match=f"in use by train run, pid {run.pid}"):
        with hold(out, "train"):
            pass
    worker_pids = [int(p) for p in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()]
    assert len(worker_pids) == 1
    run.send_signal(signal.SIGKILL)  # the run dies; its forked worker lives on
    run.wait()
    try:
        assert Path(f"/proc/{worker_pids[0]}").exists()
        with hold(out, "train"):  # free at once, not when the orphaned worker goes
            pass
    finally:
        os.kill(worker_pids[0], signal.SIGKILL)
