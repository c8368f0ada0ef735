"""Exports that appear whole or not at all, and an eval that refuses a mixed or partial one
(issue 26, item 3): a real SIGTERM to a real export process, paused at a known point by a
pipe (it says where it is on stdout and waits on stdin), never by a timer.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pipeline.config import load_config, save_config
from pipeline.errors import InputError
from pipeline.export.stage import export_run
from pipeline.export.manifest import verify_export
from pipeline.io.folder_lock import FolderBusy
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}", "model.embed_dim=16"]
# the real export, stopped after its first part (video) is written: it says so and waits
PAUSED_EXPORT = textwrap.dedent("""
    import sys
    import pipeline.export.stage as ex
    real = ex._write_part
    def write_part(folder, part, *a):
        real(folder, part, *a)
        if part.kind == "video":
            print("video written", flush=True)
            sys.stdin.readline()
    ex._write_part = write_part
    ex.export_run(ex.Path(sys.argv[1]), ex.Path(sys.argv[2]), torchscript=True)
""")


def make_run(folder: Path, seed: int) -> Path:
    """A training run folder as the engine leaves it (config + final weights), untrained."""
    cfg = load_config(TrainConfig, [], [f"out={folder}", f"seed={seed}", *TINY])
    save_config(cfg, folder / "config.yaml")
    torch.manual_seed(seed)
    build_method(cfg).export_weights(final_weights(folder))
    return folder


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def interrupted_export(run: Path, out: Path, meanwhile=None) -> None:
    """Export ``run`` to ``out`` in a real process, SIGTERM it after its video part;
    ``meanwhile()`` runs while it is paused there."""
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_EXPORT, str(run), str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline() == "video written\n", proc.stderr.read()
    if meanwhile is not None:
        meanwhile()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM


def eval_cli(export: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "eval", f"export={export}", f"out={out}",
                           "train_shards=unused", "test_shards=unused", "--quiet"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return make_run(root / "a", 0), make_run(root / "b", 1)


def test_an_interrupted_re_export_leaves_the_old_export_whole(runs, tmp_path):
    a, b = runs
    out = tmp_path / "export"
    export_run(a, out, torchscript=True)
    before = snapshot(out)
    interrupted_export(b, out)
    assert snapshot(out) == before  # not one file of b's in it
    assert verify_export(out)["source"] == str(a)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export.building-")]  # b's, aside
    export_run(b, out, torchscript=True)  # a later export replaces it whole and clears the leftovers
    assert verify_export(out)["source"] == str(b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_an_interrupted_fresh_export_leaves_nothing(runs, tmp_path):
    out = tmp_path / "export"

    def second_export() -> None:  # one export of a folder at a time
        with pytest.raises(FolderBusy, match=rf"{out}: in use by export run, pid \d+"):
            export_run(runs[1], out)

    interrupted_export(runs[0], out, meanwhile=second_export)
    assert not out.exists()
    res = eval_cli(out, tmp_path / "eval")
    assert res.returncode == 1 and "no exported video backbone" in res.stderr


def test_eval_refuses_an_export_of_mixed_or_missing_parts(runs, tmp_path):
    a, b = runs
    export_run(a, tmp_path / "a")
    export_run(b, tmp_path / "b")
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "a", mixed)
    shutil.rmtree(mixed / "audio")
    shutil.copytree(tmp_path / "b" / "audio", mixed / "audio")  # a's video beside b's audio
    res = eval_cli(mixed, tmp_path / "eval")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert f"{mixed / 'audio'}" in res.stderr and "different exports" in res.stderr
    assert not (tmp_path / "eval" / "eval.json").exists()
    # the manifest copied along too: the parts name different runs
    shutil.copy(tmp_path / "b" / "audio" / "config.json", tmp_path / "a" / "audio" / "config.json")
    with pytest.raises(InputError, match="differs"):
        verify_export(tmp_path / "a")
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "b", partial)
    (partial / "manifest.json").unlink()  # what an old, or half-written, export looks like
    res = eval_cli(partial, tmp_path / "eval")
    assert res.returncode == 1 and "incomplete export (no manifest.json" in res.stderr, res.stderr
    leftover = tmp_path / "b" / "video" / "backbone.ts"
    leftover.write_bytes(b"stale")  # a file the export did not write
    with pytest.raises(InputError, match="does not list"):
        verify_export(tmp_path / "b")


def test_an_export_never_replaces_a_folder_that_is_not_one(runs, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an export"):
        export_run(runs[0], home)
    assert (home / "thesis.tex").read_text() == "years of work"
    manifest = json.loads((export_run(runs[0], tmp_path / "ok") and tmp_path / "ok" / "manifest.json").read_text())
    assert set(manifest["kinds"]) == {"video", "audio"} and manifest["run_id"] == verify_export(tmp_path / "ok")["run_id"]
