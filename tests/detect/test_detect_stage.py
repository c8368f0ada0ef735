"""The detect stage end to end on the real shards of the synthetic corpus: AV model
through the DeepSpeed engine, pseudo labels, Faster R-CNN, evaluation and pictures; then
the eval step alone from the files the first run left, detection on a video file without
audio, and the one-line errors."""
import json
import subprocess
import sys

from PIL import Image

from pipeline.cli import main
from pipeline.config import CONFIGS
from pipeline.detect.infer import Detector

TINY = ["frames_per_clip=2", "batch_size=8", "workers=1", "shot_trials=1", "pictures=4",
        "av.steps=3", "av.log_every=1", "av.loader.batch_size=8", "av.loader.workers=1",
        "av.loader.shuffle_buffer=4", "av.loader.video.size=64",
        "av.model.audio.args={widths: [8, 8, 16, 16]}", "av.model.embed_dim=16",
        "av.avloc.frame_widths=[8, 16, 16]", "av.avloc.clusters=4",
        "detector.widths=[8, 16, 16]", "detector.steps=3", "detector.batch_size=2",
        "detector.representation=32", "detector.proposals=[50, 20]", "detector.warmup_steps=2"]


def _detect(*args):
    res = subprocess.run([sys.executable, "-m", "pipeline", "detect", str(CONFIGS / "detect_tiny.yaml"),
                          *args, "--quiet"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]


def test_detect_stage_end_to_end(synth_corpus, synth_shards, tmp_path):
    out = tmp_path / "det"
    _detect(f"out={out}", f"shards={synth_shards}", *TINY)
    report = json.loads((out / "detect_eval.json").read_text())
    for key in ("map50", "loc_acc", "map50_argmax", "map50_1shot", "map50_10shot"):
        assert 0.0 <= report[key] <= 1.0, key
    assert 0.0 <= report["random_init"]["loc_acc"] <= 1.0
    assert report["frames"] == 24 * 2 and report["clusters"] == 4 and len(report["classes"]) == 4
    assert (out / "av" / "final" / "method.safetensors").exists()       # the engine's run
    assert len((out / "av" / "metrics.jsonl").read_text().splitlines()) == 3
    assert (out / "detector" / "detector.safetensors").exists()
    side = sorted((out / "pseudo_labels").iterdir())  # one side file per shard
    assert [p.name for p in side] == [f"shard-{i:06d}.jsonl" for i in range(4)]
    rows = [json.loads(line) for p in side for line in p.read_text().splitlines()]
    assert len(rows) == 24 * 2 and {r["frame"] for r in rows} == {0, 1}
    assert len({(r["key"], r["frame"]) for r in rows}) == len(rows)
    for r in rows:
        x0, y0, x1, y1 = r["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and 0 <= r["cluster"] < 4
    for name in ("detections.png", "heatmaps.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 200
    # the eval step alone reads the AV run and the detector back and gets the same numbers
    (out / "detect_eval.json").unlink()
    _detect(f"out={out}", f"shards={synth_shards}", "steps=[eval]", *TINY)
    again = json.loads((out / "detect_eval.json").read_text())
    assert again["map50"] == report["map50"] and again["loc_acc"] == report["loc_acc"]
    # inference on a video file: images only, clusters named by the saved Hungarian naming
    frames = Detector(out).video(synth_corpus / "videos" / "000000.mp4", every=25, score_min=0.0)
    assert [f["frame"] for f in frames] == [0, 25, 50] and frames[1]["t"] == 1.0
    names = set(json.loads((out / "detector" / "naming.json").read_text())["hungarian"].values())
    for d in (d for f in frames for d in f["detections"]):
        assert len(d["box"]) == 4 and 0 <= d["cluster"] < 4
        assert d["name"] in names or d["name"].startswith("cluster ")


def test_unknown_step_is_one_line_error(tmp_path, capsys):
    assert main(["detect", f"out={tmp_path}", "shards=nowhere", "steps=[av, boxes]"]) == 1
    err = capsys.readouterr().err
    assert "boxes" in err and "choose from av, pseudo, detector, eval" in err


def test_eval_without_a_trained_model_names_the_missing_run(synth_shards, tmp_path, capsys):
    assert main(["detect", f"out={tmp_path}", f"shards={synth_shards}", "steps=[eval]"]) == 1
    assert "final/method.safetensors" in capsys.readouterr().err
