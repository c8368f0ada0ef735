"""The papers' downstream protocols on real shards laid out as the shard stage writes
them (split roots with train/ and test/, ESC-50 fold1..fold5), features memory-mapped;
and the in-sample defect: test shards = training shards is said, never hidden."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.eval.feature_store import FeatureSet
from pipeline.eval.stage import EvalConfig, run as eval_run

from fake_layouts import fake_esc50
from shard_util import shard_manifest

ROOT = Path(__file__).resolve().parents[2]


def evaluate(tmp_path, export, *overrides) -> dict:
    return eval_run(load_config(EvalConfig, [], [f"export={export}", f"out={tmp_path / 'eval'}", "workers=0",
                                                 "clips=3", *overrides]))


@pytest.fixture(scope="module")
def esc50_root(synth_corpus, tmp_path_factory):
    """Five folds of the synthetic corpus as fold1/ .. fold5/ shard sets."""
    root = tmp_path_factory.mktemp("esc50")
    rows = (synth_corpus / "manifest.jsonl").read_text().splitlines()
    for k in range(5):
        shard_manifest(rows[k::5], synth_corpus, f"fold{k + 1}", root / f"fold{k + 1}")
    return root


def test_linear_probe_is_video_level_and_chosen_on_training_videos(tiny_export, split_root, tmp_path):
    res = evaluate(tmp_path, tiny_export, "protocol=linear", f"splits=[{split_root}, {split_root}]")
    assert res["complete"] and set(res["parts"]) == {"split1", "split2"}
    part = res["parts"]["split1"]
    assert part["n_test_videos"] == 8 and part["n_train_videos"] == 16  # clips grouped into videos
    assert part["weight_decay"] in (1e-4, 1e-3, 1e-2, 1e-1) and 0 <= part["top1"] <= 1
    assert "random_init" in part and "top1" in res["mean"]["random_init"]
    assert res["mean"]["top1"] == pytest.approx(part["top1"])  # two identical splits
    saved = json.loads((tmp_path / "eval" / "linear.json").read_text())
    assert saved["mean"] == res["mean"] and not saved["in_sample"]
    # the features are memory-mapped files, sorted by video, one row per sample
    feats = sorted((tmp_path / "eval" / "features" / "trained-clips3").iterdir())
    fs = FeatureSet.open(feats[0])
    assert isinstance(fs["video_feat"], np.memmap) and fs.n == json.loads(
        (split_root / feats[0].name.split("-")[0] / "index.json").read_text())["totals"]["clips"]


def test_retrieval_and_clustering(tiny_export, split_root, tmp_path):
    ret = evaluate(tmp_path, tiny_export, "protocol=retrieval", f"splits=[{split_root}]")
    part = ret["parts"]["split1"]
    assert [k for k in part if k.startswith("r_at_")] == ["r_at_1", "r_at_5", "r_at_10"]  # 16 training videos
    assert part["r_at_1"] <= part["r_at_5"] <= part["r_at_10"] == 100.0
    clu = evaluate(tmp_path, tiny_export, "protocol=clustering", f"splits=[{split_root}]")
    part = clu["parts"]["split1"]
    assert part["k"] == 4 and part["n_videos"] == 8 and part["clips"] == 1
    for key in ("nmi", "ami", "ari", "cluster_acc", "purity"):
        assert key in part and key in part["random_init"]
    assert part["purity"] >= part["cluster_acc"]


def test_esc50_folds(tiny_export, esc50_root, tmp_path):
    one = evaluate(tmp_path, tiny_export, "protocol=esc50", f"folds={esc50_root}", "only=2")
    assert one == {"protocol": "esc50", "complete": False}  # one array task of five
    res = evaluate(tmp_path, tiny_export, "protocol=esc50", f"folds={esc50_root}")
    assert list(res["parts"]) == [f"fold{k}" for k in range(1, 6)]
    assert res["parts"]["fold3"]["test"].endswith("fold3")
    assert all("fold3" not in t for t in res["parts"]["fold3"]["train"])
    sizes = [p["n_test_videos"] for p in res["parts"].values()]
    assert sum(sizes) == 24  # every clip is tested exactly once
    assert res["mean"]["top1"] == pytest.approx(np.mean([p["top1"] for p in res["parts"].values()]))


def test_missing_layout_is_one_clear_error(tiny_export, split_root, tmp_path):
    res = subprocess.run([sys.executable, "-m", "pipeline", "eval", "protocol=esc50", f"export={tiny_export}",
                          f"folds={split_root}", f"out={tmp_path}"], capture_output=True, text=True)
    assert res.returncode == 1 and "fold1" in res.stderr and "Traceback" not in res.stderr


def test_in_sample_metrics_are_marked(tiny_export, split_root, tmp_path):
    """No held-out split (test = train): eval.json says every metric is in-sample, and
    kNN k=1 is not the trivial 1.0 of each clip finding itself."""
    train = split_root / "train"
    res = evaluate(tmp_path, tiny_export, f"train_shards={train}", f"test_shards={train}", "random_init=false")
    assert res["in_sample"] is True
    assert {"knn_top1", "linear_top1", "r_at_1_a2v", "nmi"} <= set(res["in_sample_metrics"])
    assert "in-sample" in res["in_sample_note"]
    assert res["knn_top1_k1"] < 1.0
    held = evaluate(tmp_path / "held", tiny_export, f"train_shards={train}", f"test_shards={split_root / 'test'}",
                    "random_init=false")
    assert held["in_sample"] is False and "in_sample_metrics" not in held


def test_jobs_fan_splits_out_as_an_array(tiny_export, split_root, tmp_path):
    cmd = [sys.executable, "-m", "jobs", "eval", "cluster=local", f"job_dir={tmp_path / 'jobs'}",
           "protocol=clustering", f"export={tiny_export}", f"splits=[{split_root}, {split_root}]",
           f"out={tmp_path / 'eval'}", "workers=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "submitted 2 job(s)" in res.stdout and "[split1]" in res.stdout and "[split2]" in res.stdout
    summary = json.loads((tmp_path / "eval" / "clustering.json").read_text())
    assert summary["complete"] and set(summary["parts"]) == {"split1", "split2"}


def test_readme_esc50_commands_on_an_esc50_layout(tiny_export, tmp_path):
    """Issue 26, item 9: the README's two commands, exactly, on ESC-50 as distributed
    (audio-only recordings): the protocol loads its audio-only shards itself."""
    fake = fake_esc50(tmp_path / "ESC-50")
    root, out = tmp_path / "esc50_shards", tmp_path / "ev"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for cmd in (["shard", f"input={fake.root}", f"output={root}", "dataset=esc50"],
                ["eval", "protocol=esc50", f"export={tiny_export}", f"folds={root}", f"out={out}"]):
        res = subprocess.run([sys.executable, "-m", "pipeline", *cmd], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
    with tarfile.open(sorted(root.glob("fold1/*.tar"))[0]) as tf:  # audio only, as distributed
        assert {n.rsplit(".", 1)[1] for n in tf.getnames()} == {"wav", "json", "cls"}
    summary = json.loads((out / "esc50.json").read_text())
    assert summary["complete"] and list(summary["parts"]) == [f"fold{k}" for k in range(1, 6)]
    assert sum(p["n_test_videos"] for p in summary["parts"].values()) == len(fake.files)  # each once
    assert 0 <= summary["mean"]["top1"] <= 1 and "top1" in summary["mean"]["random_init"]
