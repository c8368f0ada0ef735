"""Export and evaluation: exported backbones reproduce the trained model's features
without the training code, and eval.json has every key, beside a random-init row."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import pipeline
from pipeline.config import load_config
from pipeline.eval.stage import EvalConfig, run as eval_run
from pipeline.export.stage import export_run
from pipeline.train.config import TrainConfig
from pipeline.train.engine import train
from pipeline.train.methods import build_method

TINY = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
        "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
        "model.embed_dim=16", "loader.batch_size=6", "loader.workers=0", "loader.epoch_batches=4",
        "loader.clip.frames=4", "loader.video.size=32", "loader.audio.seconds=0.5",
        "gdt.reversal=off", "gdt.shift=off", "loader.clip.reverse=false", "tensorboard=false"]


@pytest.fixture(scope="module")
def trained_run(synth_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("gdt_run")
    cfg = load_config(TrainConfig, [], [f"out={out}", "steps=3", f"loader.shards={synth_shards}", *TINY])
    assert train(cfg)["status"] == "done"
    return out, cfg


def test_exported_backbones_match_the_trained_model(trained_run, tmp_path):
    run_dir, cfg = trained_run
    export_run(run_dir, tmp_path / "export")
    method = build_method(cfg)
    method.load_state_dict(load_file(run_dir / "final" / "method.safetensors"), strict=False)
    method.eval()
    x = {"video": torch.randn(3, 3, 4, 32, 32), "audio": torch.randn(3, 1, 40, 51)}
    video = pipeline.load_backbone(tmp_path / "export" / "video")
    audio = pipeline.load_backbone(tmp_path / "export" / "audio", with_head=True)
    assert isinstance(video, torch.nn.Module) and not video.training
    with torch.no_grad():
        assert torch.allclose(video(x["video"]), method.model.backbones["video"](x["video"]), atol=1e-6)
        want = method.model(x)["audio"]
        assert torch.allclose(audio(x["audio"]), want, atol=1e-6)
    spec = json.loads((tmp_path / "export" / "video" / "config.json").read_text())
    assert spec["input"]["frames"] == 4 and spec["input"]["size"] == 32 and spec["input"]["fps"] == 25
    # a plain interpreter with only torch + safetensors + the model code loads it
    code = ("import pipeline, torch; m = pipeline.load_backbone(%r); "
            "print(tuple(m(torch.zeros(1, 3, 4, 32, 32)).shape)); import sys; "
            "assert 'deepspeed' not in sys.modules and 'pipeline.train' not in sys.modules"
            % str(tmp_path / "export" / "video"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and "(1, 16)" in res.stdout


def test_eval_writes_all_keys(trained_run, synth_shards, tmp_path):
    run_dir, _ = trained_run
    export_run(run_dir, tmp_path / "export", torchscript=True)
    assert (tmp_path / "export" / "video" / "backbone.ts").exists()
    cfg = load_config(EvalConfig, [], [f"export={tmp_path / 'export'}", f"train_shards={synth_shards}",
                                       f"test_shards={synth_shards}", f"out={tmp_path / 'eval'}", "workers=0"])
    res = eval_run(cfg)
    keys = ["knn_top1", "linear_top1", "r_at_1_a2v", "r_at_5_a2v", "r_at_10_a2v", "medr_a2v",
            "nmi", "ari", "cluster_acc"]
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    for k in keys:
        assert k in saved and k in saved["random_init"], k
    assert saved == json.loads(json.dumps(res))
    assert 0 <= saved["knn_top1"] <= 1 and 1 <= saved["medr_a2v"] <= 24
    assert (tmp_path / "eval" / "embeddings.npz").exists()
