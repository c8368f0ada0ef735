"""Every packaged recipe loads on its own (nothing is merged under it), holds the papers'
settings it claims, and runs a few steps at tiny size overrides on real shards."""
import json
import math

import pytest

from pipeline.config import CONFIGS, load_config
from pipeline.detect.stage import DetectConfig, run as detect_run
from pipeline.train.config import TrainConfig
from pipeline.train.engine import train

# size only: small backbones, batches and crops; the data's own audio rate and no bf16 on CPU
TINY = ["model.video.args={widths: [4, 8, 8, 16], blocks: [1, 1, 1, 1]}",
        "model.audio.args={widths: [4, 8, 8, 16], blocks: [1, 1, 1, 1]}",
        "model.embed_dim=16", "model.head_hidden=16", "loader.batch_size=4", "loader.workers=0",
        "loader.epoch_batches=2", "loader.shuffle_buffer=4", "loader.clip.frames=4",
        "loader.video.size=32", "loader.audio.rate=16000", "loader.audio.seconds=0.5",
        "loader.audio.n_mels=40", "steps=2", "log_every=1", "tensorboard=false",
        "ds.precision=fp32", "ckpt.every=100", "threads=1"]
PAPER = {  # recipe -> values the paper fixes (checked on the file as shipped)
    "gdt_k400.yaml": {"method": "gdt", "model.video.name": "r2plus1d_18", "model.audio.name": "resnet9",
                      "loader.clip.frames": 30, "loader.video.size": 112, "loader.audio.rate": 24000,
                      "loader.audio.seconds": 1.0, "gdt.temperature.value": 0.07, "loader.batch_size": 8,
                      "optim.name": "sgd", "optim.lr": 0.01, "optim.weight_decay": 1e-5,
                      "gdt.form": "official_exact",  # the public code's loss (tests/parity)
                      "model.head_dropout": 0.3},
    "selavi_vggsound.yaml": {"method": "selavi", "model.video.name": "r2plus1d_18",
                             "model.audio.name": "resnet9", "selavi.clusters": 309, "selavi.heads": 10,
                             "selavi.sinkhorn.marginals": "gauss", "selavi.sinkhorn.lambda_": 20.0,
                             "loader.audio.rate": 24000, "loader.audio.seconds": 1.0,
                             "loader.batch_size": 16, "selavi.head": "official_mlp",
                             "selavi.marginal_order": "official", "loader.video.short_side": (128, 160),
                             "loader.video.jitter": 0.0, "loader.video.mean": (0.45, 0.45, 0.45)},
    "simclr_k400.yaml": {"method": "simclr", "loader.clip.copies": 2, "simclr.temperature.value": 0.1,
                         "model.embed_dim": 128, "optim.weight_decay": 1e-6},
    "clip_mmv_howto100m.yaml": {"method": "clip", "nce.pairs": ["video-audio", "video-text"],
                                "model.text.name": "mmv", "loader.clip.frames": 32,
                                "loader.video.size": 200},
    "gdt_tiny.yaml": {"method": "gdt"},
    "selavi_tiny.yaml": {"method": "selavi"},
}
EXTRA = {"selavi_vggsound.yaml": ["selavi.clusters=4", "selavi.heads=2", "selavi.relabels=2",
                                  "selavi.batch_size=8", "selavi.sinkhorn.n_iters=50"],
         "selavi_tiny.yaml": ["selavi.clusters=4", "selavi.heads=2", "selavi.relabels=2"],
         "clip_mmv_howto100m.yaml": ["model.text.name=text_tiny"]}
DETECT = {"detect_tiny.yaml", "detect_paper.yaml"}
FINETUNE = {  # GDT's fine-tuning protocol (eval_video.py + run_finetune.sh; docs/parity.md)
    "finetune_ucf101.yaml": {"method": "finetune", "optim.lr": 0.0025, "finetune.backbone_lr_scale": 0.1,
                             "finetune.epochs": 12.0, "finetune.milestones": [6.0, 10.0],
                             "finetune.warmup_epochs": 2.0, "optim.schedule": "gdt", "optim.gamma": 0.05,
                             "optim.warmup_multiplier": 8.0, "optim.weight_decay": 0.005, "optim.decay_all": True,
                             "finetune.head_init": "orthogonal", "finetune.aggregate": "logits",
                             "finetune.test_epochs": [7, 8, 9, 10, 11], "finetune.drop_last": True,
                             "finetune.pixel_mean": [0.45] * 3, "finetune.pixel_std": [0.225] * 3,
                             "finetune.test_clips": 10, "finetune.test_crops": 3, "loader.clip.frames": 32,
                             "loader.video.size": 128, "loader.video.scale": (0.14, 1.0), "loader.video.jitter": 0.4,
                             "loader.video.jitter_prob": 0.8, "loader.video.hue_ratio": 0.0,
                             "loader.batch_size": 32},
    "finetune_tiny.yaml": {"method": "finetune", "finetune.test_clips": 10, "finetune.test_crops": 3},
}
FINETUNE["finetune_hmdb51.yaml"] = FINETUNE["finetune_ucf101.yaml"]


def value(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_every_recipe_is_exercised_here():
    shipped = {p.name for p in CONFIGS.glob("*.yaml")}
    assert shipped == set(PAPER) | DETECT | set(FINETUNE), "add the new recipe to tests/test_recipes.py"
    for name in shipped:  # each says which paper (table) or corpus it follows
        head = (CONFIGS / name).read_text().split("\n\n")[0]
        assert "Follows:" in head or "synthetic corpus" in head, name


@pytest.mark.parametrize("name", sorted(PAPER))
def test_training_recipe_loads_and_runs(name, synth_shards, tmp_path):
    shipped = load_config(TrainConfig, [CONFIGS / name], [f"out={tmp_path}"])
    for key, want in PAPER[name].items():
        assert value(shipped, key) == want, key
    tiny = [o for o in TINY if not (o.startswith("model.audio") and not shipped.model.audio.name)]
    cfg = load_config(TrainConfig, [CONFIGS / name],
                      [f"out={tmp_path}", f"loader.shards={synth_shards}", *tiny, *EXTRA.get(name, [])])
    assert train(cfg)["status"] == "done"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["loss"]) for r in rows)


DETECT_TINY = ["frames_per_clip=1", "batch_size=8", "workers=0", "shot_trials=1", "shots=[1]",
               "pictures=2", "threads=1", "random_init=false", "av.steps=2", "av.log_every=1",
               "av.tensorboard=false", "av.loader.batch_size=4", "av.loader.workers=0",
               "av.loader.shuffle_buffer=4", "av.loader.video.size=64", "av.loader.epoch_batches=2",
               "av.model.audio.args={widths: [8, 8, 16, 16]}", "av.model.embed_dim=16",
               "av.model.head_hidden=16", "av.avloc.frame_widths=[8, 16, 16]", "av.avloc.frame_blocks=1",
               "av.avloc.clusters=4", "av.ds.precision=fp32", "detector.backbone=tiny",
               "detector.widths=[8, 16, 16]", "detector.image_size=0", "detector.steps=2",
               "detector.batch_size=2", "detector.representation=32", "detector.proposals=[50, 20]",
               "detector.warmup_steps=1", "detector.detections_per_img=10"]


@pytest.mark.parametrize("name", sorted(DETECT))
def test_detection_recipe_loads_and_runs(name, synth_shards, tmp_path):
    shipped = load_config(DetectConfig, [CONFIGS / name], [f"out={tmp_path}", "shards=x"])
    assert shipped.av.method == "avloc" and shipped.av.avloc.visual == "frame"
    if name == "detect_paper.yaml":
        assert shipped.av.avloc.clusters == 39 and shipped.detector.backbone == "resnet50"
    cfg = load_config(DetectConfig, [CONFIGS / name],
                      [f"out={tmp_path}", f"shards={synth_shards}", *DETECT_TINY])
    report = detect_run(cfg)
    assert 0.0 <= report["map50"] <= 1.0 and report["frames"] == 24


FINETUNE_TINY = ["finetune.epochs=2", "finetune.warmup_epochs=0", "finetune.milestones=[1]", "finetune.test_epochs=[0]",
                 "finetune.clips_per_video=1", "finetune.test_clips=2", "finetune.test_crops=1",
                 "finetune.test_resize=0", "finetune.match_export=false", "loader.batch_size=4",
                 "loader.workers=0", "loader.clip.frames=4", "loader.video.size=32", "ckpt.every=100",
                 "log_every=1"]


@pytest.mark.parametrize("name", sorted(FINETUNE))
def test_finetune_recipe_loads_and_runs(name, tiny_export, split_root, tmp_path):
    from pipeline.finetune.stage import run_parts
    shipped = load_config(TrainConfig, [CONFIGS / name], [f"out={tmp_path}"])
    for key, want in FINETUNE[name].items():
        assert value(shipped, key) == want, key
    cfg = load_config(TrainConfig, [CONFIGS / name], [f"out={tmp_path}", f"finetune.backbone={tiny_export}",
                                                      f"finetune.splits=[{split_root}]", *FINETUNE_TINY])
    result = run_parts(cfg)
    assert result["complete"] and 0.0 <= result["mean"]["video_top1"] <= 1.0
    row = result["splits"]["split1"]  # epochs 0 and 1 tested; the final one is the result
    assert row["final_epoch"] == 1 and sorted(row["per_epoch"]) == ["0", "1"]
    assert row["video_top1"] == row["per_epoch"]["1"]["video_top1"]
    assert row["best"]["selection"] == "selected on the test split, as the paper reports"
