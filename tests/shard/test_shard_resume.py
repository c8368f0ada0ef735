"""Resume: a real ``kill -9`` of a sharding process mid-run, then a re-run, gives the bytes
of an uninterrupted run; complete shards are skipped; a changed setting redoes them."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.cli import build_config
from pipeline.stages import STAGES

DATA = Path(__file__).resolve().parents[1] / "data"
REPO = Path(__file__).resolve().parents[2]
FILES = {"a/lego_toy.mp4": "lego_toy.mp4", "a/rocket_launch.webm": "rocket_launch.webm",
         "b/chimpanzee.mpg": "chimpanzee.mpg", "b/bunny_6ch.mp4": "bunny_6ch.mp4",
         "c/face_hevc.mov": "face_hevc.mov", "c/city_no_audio.mpg": "city_no_audio.mpg",
         "c/lego_toy.mp4": "lego_toy.mp4", "d/park_short.mp4": "park_short.mp4"}
ARGS = ["videos_per_shard=1", "clip_seconds=2", "short_side=64", "require_audio=false", "workers=2",
        "holdout=0"]


def make_corpus(root: Path, files: dict) -> Path:
    for rel, src in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / src, root / rel)
    return root


def cli(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "shard", f"input={corpus}", f"output={out}", *ARGS,
            "--quiet"]


def wait_for(proc: subprocess.Popen, cond, what: str) -> None:
    deadline = time.time() + 120
    while not cond():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def alive_writers(out: Path) -> list[int]:
    """Processes (stage, pool workers) whose command line names this output folder."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and f"output={out}".encode() in (d / "cmdline").read_bytes():
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.suffix == ".tar" or p.name.endswith(".json")}


def test_kill_9_mid_run_then_resume_is_byte_identical(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", FILES)
    ref, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run(cli(corpus, ref), cwd=REPO, check=True, capture_output=True)
    n_shards = len(FILES)
    assert len(list(ref.glob("*.stats.json"))) == n_shards

    # 1st kill: while a shard tar is half written (its private temporary exists)
    proc = subprocess.Popen(cli(corpus, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(proc, lambda: any(out.glob(".shard-*.tar.*.tmp")), "a tar being written")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # 2nd kill: right after one more shard completed
    done = len(list(out.glob("*.stats.json")))
    proc = subprocess.Popen(cli(corpus, out), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(proc, lambda: len(list(out.glob("*.stats.json"))) > done, "one more shard")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    deadline = time.time() + 10  # pool workers and their ffmpegs die with the stage
    while alive_writers(out) and time.time() < deadline:
        time.sleep(0.05)
    assert alive_writers(out) == []
    assert len(list(out.glob("*.stats.json"))) < n_shards and not (out / "index.json").exists()

    res = subprocess.run(cli(corpus, out), cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "already complete" in res.stdout
    got, want = outputs(out), outputs(ref)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # temporaries cleaned


def shard(*overrides: str) -> dict:
    stage = STAGES["shard"]
    return stage.load_target()(build_config(stage, [], list(overrides)))


def test_rerun_skips_complete_shards_and_redoes_changed_ones(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", {"x/lego_toy.mp4": "lego_toy.mp4",
                                               "y/chimpanzee.mpg": "chimpanzee.mpg"})
    out = tmp_path / "out"
    common = [f"input={corpus}", f"output={out}", "videos_per_shard=1", "clip_seconds=2",
              "short_side=64", "workers=1", "holdout=0"]
    assert shard(*common)["shards_written"] == 2
    first = outputs(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    again = shard(*common)
    assert again["shards_written"] == 0 and again["shards_skipped"] == 2 and again["complete"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.tar")} == mtimes
    # a shard whose completion marker is gone is redone, with the same bytes
    (out / "shard-000001.stats.json").unlink()
    assert shard(*common)["shards_written"] == 1
    assert outputs(out) == first
    # a setting that changes the bytes invalidates every shard made with the old one
    changed = shard(*common, "crf=35")
    assert changed["shards_written"] == 2
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["crf"] == 35
    assert outputs(out)["shard-000000.tar"] != first["shard-000000.tar"]
