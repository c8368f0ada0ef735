"""The demo end to end on a small synthetic corpus, and its report rendered by a real
headless browser (Debian's chromium)."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from pipeline.config import load_config
from pipeline.demo.stage import DemoConfig, run as demo_run

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "loader.batch_size=8", "loader.workers=1", "loader.clip.frames=4",
        "loader.video.size=32", "tensorboard=false"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cfg = load_config(DemoConfig, [], [
        f"out={out}", "n_train=24", "n_test=16", "n_classes=4",
        "gdt_overrides=" + json.dumps(TINY + ["steps=3"]),
        "selavi_overrides=" + json.dumps(TINY + ["steps=3", "selavi.relabels=2", "selavi.clusters=4",
                                                 "selavi.heads=2"]),
        # the AV model's audio net starts from the GDT run's (av.init): the same widths
        "detect_overrides=" + json.dumps(["av.steps=3", "av.loader.workers=1", "detector.steps=2",
                                          "av.model.audio.args={widths: [4, 8, 8, 16]}",
                                          "workers=1", "shot_trials=1", "pictures=4"]),
        "finetune_overrides=" + json.dumps(["finetune.epochs=1", "finetune.clips_per_video=1",
                                            "finetune.test_clips=2", "loader.batch_size=8"]),
    ])
    demo_run(cfg)
    return out


def test_demo_outputs(demo_dir):
    ev = json.loads((demo_dir / "eval.json").read_text())
    assert ev == json.loads((demo_dir / "eval" / "eval.json").read_text())
    assert (demo_dir / "report.html").exists() and (demo_dir / "export" / "video").is_dir()
    assert f"init: {demo_dir / 'gdt'}" in (demo_dir / "detect" / "av" / "config.yaml").read_text()
    assert f"init: {demo_dir / 'gdt'}" in (demo_dir / "selavi" / "config.yaml").read_text()
    for key in ("knn_top1", "linear_top1", "r_at_1_a2v", "r_at_5_a2v", "r_at_10_a2v", "medr_a2v",
                "nmi", "ari", "cluster_acc", "selavi_nmi", "map50"):
        assert key in ev, key
    assert "knn_top1" in ev["random_init"]
    assert (demo_dir / "export" / "video" / "backbone.safetensors").exists()
    assert (demo_dir / "selavi" / "clusters.html").exists()
    assert (demo_dir / "report.html").exists()
    ft = json.loads((demo_dir / "finetune" / "finetune.json").read_text())
    assert ft["splits"]["split1"]["n_test_videos"] == 16 and 0 <= ft["mean"]["video_top1"] <= 1
    assert json.loads((demo_dir / "finetune_random_init" / "finetune.json").read_text())["pretrained"] is False
    assert ev["in_sample"] is False


def test_report_renders_in_chromium(demo_dir, tmp_path):
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is installed by `make test` (system-deps)"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (demo_dir / "report.html").as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for text in ("Training", "Evaluation", "random init", "Embeddings", "Retrieval examples", "cluster browser",
                 "Fine-tuning", "video-level top-1", "clip-level top-1"):
        assert text in dom, text
    assert dom.count("<img") >= 4
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,2000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1200)
    inked = img.min(axis=2) < 235  # anything drawn: text, tables, plots, thumbnails
    coloured = (img.max(axis=2) - img.min(axis=2)) > 60  # saturated: curves, scatter, thumbnails
    assert inked.mean() > 0.03 and coloured.mean() > 0.002
