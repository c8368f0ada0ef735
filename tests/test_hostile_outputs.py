"""Results that survive a failed write, and readers of run and job folders that cannot be
turned against the user (issue 16, items 7, 8, 9 and 11): real files, real processes.
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from jobs import record
from jobs.cli import main as jobs_main
from jobs.status import paths
from pipeline.cli import main
from pipeline.config import load_config, save_config
from pipeline.errors import InputError
from pipeline.export.stage import export_run
from pipeline.models.load import load_backbone
from pipeline.models.registry import build_video
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}", "model.embed_dim=16"]


class Planted:
    """A pickle that creates ``marker`` when it is loaded: proof that foreign code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def limited(nbytes: int):
    """preexec_fn: no file of the child may grow past ``nbytes`` (``ulimit -f``)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


# item 7: job folders are trusted inputs
def test_jobs_status_refuses_a_folder_others_can_write(tmp_path, capsys):
    folder, marker = tmp_path / "jobs", tmp_path / "ran"
    record.append(folder, "train", "local", [{"job_id": "4242", "label": "", "tasks": 1},
                                             {"job_id": "../elsewhere", "label": "", "tasks": 1}])
    for job_id in ("4242", "../elsewhere"):
        result = paths(folder, job_id).result_pickle
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_bytes(pickle.dumps(("success", Planted(marker))))
    os.chmod(folder, 0o777)
    assert jobs_main(["status", str(folder)]) == 1
    assert "writable by others" in capsys.readouterr().err and not marker.exists()
    os.chmod(folder, 0o755)
    paths(folder, "4242").result_pickle.chmod(0o666)  # the folder is fine, the pickle is not
    assert jobs_main(["status", str(folder)]) == 1
    assert "writable by others" in capsys.readouterr().err and not marker.exists()
    paths(folder, "4242").result_pickle.unlink()  # trusted folder: its own job ids only
    assert jobs_main(["status", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "../elsewhere: UNREADABLE" in out and not marker.exists()


# item 8: an export folder from anyone
def export_folder(tmp_path: Path, args: dict, kind: str = "video") -> Path:
    folder = tmp_path / "export"
    folder.mkdir(exist_ok=True)
    save_file(build_video("r3d_tiny", widths=[4, 8, 8, 16]).state_dict(), folder / "backbone.safetensors")
    (folder / "config.json").write_text(json.dumps({"format": 1, "kind": kind, "name": "r3d_tiny", "args": args}))
    return folder


def test_export_config_is_data_not_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    folder = export_folder(tmp_path, {"widths": "${oc.env:SECRET_TOKEN}"})
    with pytest.raises(InputError, match="interpolation") as err:
        load_backbone(folder)
    assert "hunter2" not in str(err.value)


def test_export_config_cannot_make_us_allocate_what_the_file_does_not_hold(tmp_path):
    folder = export_folder(tmp_path, {"widths": [512, 512, 512, 512]})  # ~230 MB if built
    with pytest.raises(InputError, match=r"holds 19,712 parameters .* describes 57,659,916"):
        load_backbone(folder)
    with pytest.raises(InputError, match="unknown kind 'bogus'"):
        load_backbone(export_folder(tmp_path, {}, kind="bogus"))
    assert isinstance(load_backbone(export_folder(tmp_path, {"widths": [4, 8, 8, 16]})), torch.nn.Module)


def test_an_export_is_readable_as_a_whole(tmp_path):
    run = tmp_path / "run"
    cfg = load_config(TrainConfig, [], [f"out={run}", *TINY])
    save_config(cfg, run / "config.yaml")
    build_method(cfg).export_weights(final_weights(run))
    export_run(run, tmp_path / "export", torchscript=True)
    files = sorted((tmp_path / "export").rglob("*.*"))
    assert {f.name for f in files} >= {"backbone.safetensors", "head.safetensors", "config.json", "backbone.ts"}
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}, files


# items 9 and 11: the report
@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder holding what the report reads, with hostile names and values in it."""
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "eval.json").write_text(json.dumps(
        {"n_train": "<script>alert(1)</script>", "n_test": 20, "knn_top1": 0.5}))
    rng = np.random.default_rng(0)
    np.savez(run / "eval" / "embeddings.npz", video_emb=rng.normal(size=(20, 4)).astype("f4"),
             label=np.arange(20) % 2)
    (run / "shards" / "test").mkdir(parents=True)
    (run / "shards" / "test" / "index.json").write_text(json.dumps({"classes": [r"$\notacommand$", "b$"]}))
    (run / "javascript:alert(1)").mkdir()
    (run / "javascript:alert(1)" / "clusters.html").write_text("<html></html>")
    return run


def test_report_escapes_everything_and_links_only_relative(run_dir):
    assert main(["report", str(run_dir), "--quiet"]) == 0
    html = (run_dir / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "href='javascript:" not in html and "href='./javascript%3Aalert%281%29/clusters.html'" in html
    assert "alt='t-SNE'" in html  # the "$...$" class names did not crash the figure


@pytest.mark.slow  # report subprocesses under a file-size limit
def test_a_good_report_survives_a_failed_rewrite(run_dir):
    (run_dir / "eval" / "embeddings.npz").unlink()  # no t-SNE: this test is about the write
    assert main(["report", str(run_dir), "--quiet"]) == 0
    good = (run_dir / "report.html").read_bytes()
    rows = [{"step": s, "loss": 1.0 / s, "lr": 0.1} for s in range(1, 50)]
    (run_dir / "gdt").mkdir()
    (run_dir / "gdt" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = subprocess.run([sys.executable, "-m", "pipeline", "report", str(run_dir), "--quiet"],
                         capture_output=True, text=True,  # the new page, with curves, is larger:
                         preexec_fn=limited(len(good) + 2000))
    assert res.returncode != 0 and "File too large" in res.stderr
    assert (run_dir / "report.html").read_bytes() == good
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_a_good_eval_json_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"knn_top1": 0.9}))
    code = ("import sys; from pipeline.io.atomic import write_json; "
            "write_json(sys.argv[1], {'knn_top1': 0.1, 'pad': 'x' * 100000})")
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         preexec_fn=limited(20 * 1024))
    assert res.returncode != 0 and "File too large" in res.stderr
    assert json.loads(path.read_text()) == {"knn_top1": 0.9}
