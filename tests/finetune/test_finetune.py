"""Fine-tuning (GDT's protocol) end to end on real shards and the real DeepSpeed engine:
one process, an interrupted split resuming exactly, and 2 gloo ranks under torchrun."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import CONFIGS, load_config
from pipeline.finetune.stage import SELECTED, Split, result_row, run_parts
from pipeline.finetune.multiview import accuracies, spatial_crops, view_scores
from pipeline.train.config import TrainConfig
from pipeline.train.distributed import free_port
from pipeline.train.methods import build_method
from pipeline.train.optim import build_optimizer, build_scheduler

RECIPE = str(CONFIGS / "finetune_tiny.yaml")
SHORT = ["finetune.epochs=2", "finetune.warmup_epochs=0.5", "finetune.milestones=[1.5]", "finetune.clips_per_video=1",
         "finetune.test_clips=3", "loader.batch_size=4", "loader.workers=1", "loader.clip.frames=4", "ckpt.every=100"]


def config(out, export, split_root, *extra) -> TrainConfig:
    return load_config(TrainConfig, [RECIPE], [f"out={out}", f"finetune.backbone={export}",
                                               f"finetune.splits=[{split_root}]", *SHORT, *extra])


def test_head_and_backbone_learn_at_their_own_rates(tiny_export, split_root, tmp_path):
    cfg = config(tmp_path, tiny_export, split_root, "finetune.classes=4", "optim.warmup_steps=2",
                 "optim.milestones=[5, 8]", "optim.lr=0.1")
    method = build_method(cfg)
    opt = build_optimizer(method, cfg.optim, 1)
    head = {id(p) for p in method.head.parameters()}
    for group in opt.param_groups:
        is_head = {id(p) in head for p in group["params"]}
        assert len(is_head) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(0.1 if is_head.pop() else 0.01)
    sched = build_scheduler(opt, cfg.optim, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    base = lrs[2]
    assert lrs[0] == pytest.approx(base / 2) and lrs[4] == pytest.approx(base)
    assert lrs[5] == pytest.approx(base * 0.1) and lrs[8] == pytest.approx(base * 0.01)


def test_three_crops_and_video_level_grouping():
    video = torch.arange(6 * 6, dtype=torch.float32).view(1, 1, 1, 1, 6, 6).expand(1, 2, 3, 2, 6, 6)
    crops = spatial_crops(video, 4, 3)
    assert crops.shape == (1, 2, 3, 3, 2, 4, 4)
    assert crops[0, 0, 0, 0, 0, 0, 0] == 6 and crops[0, 0, 1, 0, 0, 0, 0] == 7 and crops[0, 0, 2, 0, 0, 0, 0] == 8
    # video a: two samples whose clips disagree; averaged they are right; b: wrong
    pred = {"keys": ["a_h_0000", "a_h_0001", "b_h_0000"], "labels": torch.tensor([0, 0, 1]).numpy(),
            "probs": torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]]).numpy(),
            "hits": torch.tensor([2, 0, 1]).numpy(), "clips": torch.tensor([2, 2, 2]).numpy()}
    acc = accuracies(pred)
    assert acc["video_top1"] == 0.5 and acc["clip_top1"] == pytest.approx(3 / 6)
    assert acc["n_test_videos"] == 2 and acc["n_test_samples"] == 3


def test_logits_and_softmax_averages_are_both_offered_and_can_disagree():
    # one sample, three views: two say class 0 mildly, one says class 1 with a very large logit
    logits = torch.tensor([[[[2.0, 0.0]], [[2.0, 0.0]], [[0.0, 9.0]]]])  # [B=1, P=3, X=1, 2]
    assert view_scores(logits, "softmax").argmax(-1).item() == 0
    assert view_scores(logits, "logits").argmax(-1).item() == 1
    assert torch.equal(view_scores(logits, "logits"), logits.mean((1, 2)))


def test_best_epoch_is_reported_beside_the_final_one_and_marked(tiny_export, split_root, tmp_path):
    cfg = config(tmp_path, tiny_export, split_root, "finetune.classes=4")
    tested = {e: {"epoch": e, "steps": e, "video_top1": v, "clip_top1": v / 2}
              for e, v in ((7, 0.5), (8, 0.7), (9, 0.7), (11, 0.6))}
    row = result_row(cfg, tested, str(tiny_export), Split("split1", "tr", "te"), 1)
    assert row["video_top1"] == 0.6 and row["final_epoch"] == 11  # the result is the final epoch
    assert row["best"] == {"epoch": 8, "video_top1": 0.7, "clip_top1": 0.35, "selection": SELECTED,
                           "epochs_considered": [7, 8, 9, 11]}  # the first of equal epochs, as eval_video.py
    assert "test split" in SELECTED
    assert "best" not in result_row(cfg, {11: tested[11]}, str(tiny_export), Split("split1", "tr", "te"), 1)


def test_finetune_trains_tests_and_resumes_exactly(tiny_export, split_root, tmp_path):
    straight = run_parts(config(tmp_path / "straight", tiny_export, split_root))
    assert straight["complete"] and straight["status"] == "done"
    row = straight["splits"]["split1"]
    test_index = json.loads((split_root / "test" / "index.json").read_text())
    assert row["n_test_videos"] == test_index["totals"]["videos"] == 8
    assert row["n_test_clips"] == 3 * row["n_test_samples"] and row["n_test_samples"] == test_index["totals"]["clips"]
    assert 0.0 <= row["clip_top1"] <= 1.0 and 0.0 <= row["video_top1"] <= 1.0
    train_videos = json.loads((split_root / "train" / "index.json").read_text())["totals"]["videos"]
    assert row["steps"] == 2 * -(-train_videos // 4)  # 2 epochs of one clip per video, batch 4
    saved = json.loads((tmp_path / "straight" / "finetune.json").read_text())
    assert saved["mean"]["video_top1"] == row["video_top1"] and "video-level" in saved["definition"]
    metrics = (tmp_path / "straight" / "split1" / "metrics.jsonl").read_text().splitlines()
    assert metrics and "clip_top1" in json.loads(metrics[-1])

    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2
    cut = config(tmp_path / "resumed", tiny_export, split_root)
    first = run_parts(cut, stop_requested=stop_after_two)
    assert first["status"] == "interrupted" and first["step"] == 2
    again = run_parts(cut)
    assert again["complete"]
    a = load_file(tmp_path / "straight" / "split1" / "final" / "method.safetensors")
    b = load_file(tmp_path / "resumed" / "split1" / "final" / "method.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again["splits"]["split1"]["video_top1"] == row["video_top1"]


def test_random_init_baseline_differs_from_the_export(tiny_export, split_root, tmp_path):
    cfg = config(tmp_path, tiny_export, split_root, "finetune.classes=4")
    trained = build_method(cfg).backbone.state_dict()
    cfg.finetune.pretrained = False
    fresh = build_method(cfg).backbone.state_dict()
    export = load_file(tiny_export / "video" / "backbone.safetensors")
    assert all(torch.equal(trained[k], export[k]) for k in export)
    assert not all(torch.equal(fresh[k], export[k]) for k in export if export[k].is_floating_point())


@pytest.mark.distributed
def test_two_ranks_finetune_and_test_every_video(tiny_export, split_root, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           "-m", "pipeline", "finetune", RECIPE, f"out={tmp_path}", f"finetune.backbone={tiny_export}",
           f"finetune.splits=[{split_root}]", *SHORT, "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    row = json.loads((tmp_path / "split1" / "test.json").read_text())
    assert row["world_size"] == 2 and row["n_test_videos"] == 8  # both ranks' halves gathered
    train_videos = json.loads((split_root / "train" / "index.json").read_text())["totals"]["videos"]
    assert row["steps"] == 2 * -(-train_videos // 8)  # 2 ranks x 4 clips per step
    assert (tmp_path / "split1" / "checkpoints").is_dir() and (tmp_path / "finetune.json").is_file()


def test_bad_values_and_layouts_fail_before_any_work(tiny_export, split_root, tmp_path):
    base = [sys.executable, "-m", "pipeline", "finetune", RECIPE, f"out={tmp_path / 'ft'}",
            f"finetune.backbone={tiny_export}"]
    res = subprocess.run(base + [f"finetune.splits=[{split_root}]", "finetune.test_crops=2"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "'finetune.test_crops'" in res.stderr
    res = subprocess.run(base + [f"finetune.splits=[{split_root}]", "finetune.pixel_mean=[0.45]",
                                 "finetune.pixel_std=[0.225]"], capture_output=True, text=True)
    assert res.returncode == 2 and "finetune.pixel_mean" in res.stderr and "3 values" in res.stderr
    res = subprocess.run(base + [f"finetune.splits=[{split_root}]", "finetune.test_epochs=[6]"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "finetune.test_epochs" in res.stderr
    res = subprocess.run(base + [f"finetune.splits=[{split_root / 'train'}]"], capture_output=True, text=True)
    assert res.returncode == 1 and "not a finished shard folder" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ft" / "split1").exists()


def test_jobs_submit_one_training_job_per_split(tiny_export, split_root, tmp_path):
    res = subprocess.run([sys.executable, "-m", "jobs", "finetune", "--dry-run", "cluster=slurm",
                          f"job_dir={tmp_path / 'jobs'}", RECIPE, f"out={tmp_path / 'ft'}",
                          f"finetune.backbone={tiny_export}", f"finetune.splits=[{split_root}, {split_root}]"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "# tasks: split1, split2" in res.stdout and "--array=0-1" in res.stdout
    assert "method: finetune" in res.stdout and not (tmp_path / "jobs").exists()
