"""Checkpoints that must not crash, fool or lose a run (issue 16, items 1, 7 and 10).

Real DeepSpeed runs on gloo, real files: a truncated newest checkpoint, a kill -9 of two
ranks at a random step, and folders that are not the user's own.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.train import checkpoint as ckpt
from pipeline.train.distributed import free_port
from test_train_engine import HERE, TINY, run_probe


def metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def fake_checkpoint(root: Path, step: int, files: dict[str, bytes]) -> Path:
    """A checkpoint folder as ``save`` leaves it (the manifest of the given files)."""
    folder = root / ckpt.tag_for(step)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {"step": step, "files": ckpt._digests(folder, sorted(files))}
    (folder / ckpt.MARKER).write_text(json.dumps(manifest))
    return folder


def test_verify_catches_what_damages_a_checkpoint(tmp_path):
    good = fake_checkpoint(tmp_path, 1, {"a.pt": b"x" * 100, "rank_00000.pt": b"y" * 10})
    assert ckpt.verify(good) is None
    cases = {
        "damaged": lambda f: (f / "a.pt").write_bytes(b"x" * 99 + b"z"),  # same size
        "damaged ": lambda f: (f / "a.pt").write_bytes(b"x" * 50),         # truncated
        "missing": lambda f: (f / "rank_00000.pt").unlink(),
        "unexpected": lambda f: (f / "planted.pt").write_bytes(b"p"),
        "writable by others": lambda f: f.chmod(0o777),
        "no file manifest": lambda f: (f / ckpt.MARKER).write_text("1"),   # the old marker
    }
    for step, (word, spoil) in enumerate(cases.items(), start=2):
        folder = fake_checkpoint(tmp_path, step, {"a.pt": b"x" * 100, "rank_00000.pt": b"y" * 10})
        spoil(folder)
        why = ckpt.verify(folder)
        assert why is not None and word.strip() in why, (word, why)


def test_no_usable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    for step in (1, 2):
        folder = fake_checkpoint(tmp_path, step, {"a.pt": b"x" * 10})
        (folder / "a.pt").write_bytes(b"")
    with pytest.raises(InputError, match="no usable checkpoint.*step_00000002.*step_00000001"):
        ckpt.restore(None, tmp_path, "auto", 0)  # refused before DeepSpeed is ever asked
    assert ckpt.restore(None, tmp_path / "nothing_yet", "auto", 0) is None


def test_resume_path_refuses_a_folder_others_can_write(tmp_path):
    folder = fake_checkpoint(tmp_path, 1, {"a.pt": b"x"})
    (folder / "a.pt").chmod(0o666)
    with pytest.raises(InputError, match="writable by others"):
        ckpt.restore(None, tmp_path, str(folder), 0)
    if os.geteuid() == 0:  # root can hand the folder to someone else
        os.chown(folder, 65534, 65534)
        other = folder
    else:  # anyone else finds a folder that is not theirs at /
        other = Path("/")
    why = ckpt.verify(other)
    assert why is not None and "owned by uid" in why


@pytest.mark.distributed
def test_truncated_newest_checkpoints_fall_back_to_one_that_loads(synth_shards, tmp_path):
    """The repro: a finished run, its newest checkpoint's model states truncated and the
    next one's rank file too; resume=auto logs both and continues from step 1."""
    run = tmp_path / "run"
    run_probe(run, synth_shards, 1, 0, "steps=3", "ckpt.every=1", "ckpt.keep_last=3")
    for step, name in ((3, "mp_rank_00_model_states.pt"), (2, "rank_00000.pt")):
        path = run / "checkpoints" / ckpt.tag_for(step) / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = run_probe(run, synth_shards, 1, 0, "steps=4", "ckpt.every=1", "ckpt.keep_last=3")
    assert again[0]["status"] == "done" and again[0]["resumed_from"].endswith("step_00000001")
    assert metric_steps(run) == [1, 2, 3, 4]


@pytest.mark.distributed
def test_kill_9_of_two_ranks_at_a_random_step_then_resume_auto(synth_shards, tmp_path):
    """kill -9 of torchrun and both ranks (mid-step, mid-save: wherever they are), then a
    resume in new processes ends with the parameters of an uninterrupted run."""
    steps, every = 6, 2
    args = [f"steps={steps}", f"ckpt.every={every}"]
    kill_after = random.Random().randint(3, steps - 1)
    straight = run_probe(tmp_path / "straight", synth_shards, 2, 0, *args)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", str(HERE / "train_probe.py"), str(run / "result"), "0",
           f"out={run}", f"loader.shards={synth_shards}", *TINY, *args]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        while not ((run / "metrics.jsonl").exists() and kill_after in metric_steps(run)):
            assert proc.poll() is None, f"ended before step {kill_after}: " + (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: torchrun, ranks, loader workers
        proc.wait()
    assert max(metric_steps(run)) >= kill_after
    resumed = run_probe(run, synth_shards, 2, 0, *args)
    note = f"killed after step {kill_after}, resumed from {resumed[0]['resumed_from']}"
    assert resumed[0]["resumed_from"] is not None, note
    assert resumed[0]["param_digest"] == resumed[1]["param_digest"] == straight[0]["param_digest"], note
    assert metric_steps(run) == list(range(1, steps + 1)), note  # no row twice
