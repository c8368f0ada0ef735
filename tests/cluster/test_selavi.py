"""SeLaVi: the re-labelling schedule, labels riding in the state dict, and the cluster
stage end to end on real shards (labels file, metrics, browser page)."""
import csv
import json

import torch

from pipeline.config import load_config
from pipeline.train.config import TrainConfig
from pipeline.cluster.stage import run as cluster_run
from pipeline.train.methods import build_method
from pipeline.train.methods.selavi import relabel_steps

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "loader.batch_size=6", "loader.workers=0", "loader.epoch_batches=4",
        "loader.clip.frames=4", "loader.video.size=32", "loader.audio.seconds=0.5",
        "selavi.clusters=4", "selavi.heads=2", "selavi.batch_size=8", "tensorboard=false"]


def test_schedule_is_denser_early():
    steps = relabel_steps(1000, 100, 1.5)
    assert steps[0] == 0 and steps[-1] < 1000 and len(steps) > 80
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[0] < gaps[-1]


def test_labels_ride_in_the_state_dict(tmp_path):
    cfg = load_config(TrainConfig, [], [f"out={tmp_path}", "method=selavi", *TINY])
    a, b = build_method(cfg), build_method(cfg)
    a.set_labels(["k1", "k0"], torch.tensor([[1, 2], [3, 0]]))
    a.last_relabel = 7
    b.load_state_dict(a.state_dict())
    assert b.keys == ["k1", "k0"] and torch.equal(b.labels, a.labels) and b.last_relabel == 7
    assert b.index["k0"] == 1


def test_cluster_stage_end_to_end(synth_shards, tmp_path):
    cfg = load_config(TrainConfig, [], [f"out={tmp_path}", "method=selavi", "steps=4",
                                        "selavi.relabels=3", f"loader.shards={synth_shards}", *TINY])
    result = cluster_run(cfg)
    assert result["status"] == "done" and result["samples"] == 24
    rows = list(csv.DictReader(open(tmp_path / "labels.csv")))
    assert len(rows) == 24 and set(rows[0]) == {"key", "head0", "head1"}
    assert all(0 <= int(r["head0"]) < 4 for r in rows)
    ev = json.loads((tmp_path / "cluster_eval.json").read_text())
    assert 0 <= ev["nmi"] <= 1 and -1 <= ev["ari"] <= 1 and 0 < ev["cluster_acc"] <= 1
    page = (tmp_path / "clusters.html").read_text()
    assert page.count("<h2>cluster") == len({r["head0"] for r in rows})
    assert "data:image/png;base64" in page and "data:audio/wav;base64" in page
