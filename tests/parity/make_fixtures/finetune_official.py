"""Make the fine-tuning fixtures from the official GDT code (facebookresearch/GDT 873e630).

    python tests/parity/make_fixtures/finetune_official.py --gdt /path/to/GDT --out tests/parity/fixtures

Nothing official is copied here: the script imports the official modules from the
checkout (``eval_video.py``, ``src/scheduler.py``, ``datasets/AVideoDataset.py``,
``datasets/video_transforms.py``), stubs the imports they never reach in these calls
(kornia, pandas, ffmpeg, joblib, the model zoo), and runs:

1. ``finetune_gdt_lr.json``: the optimizer and scheduler blocks of ``eval_video.main``
   (its own source lines, executed with ``run_finetune.sh``'s arguments on the official
   ``Finetune_Model`` around a small stand-in base network), then the loop ``main``
   runs: ``steps_per_epoch`` optimizer steps per epoch (the lr read from the head and
   the backbone groups at each step), ``lr_scheduler.step()`` after each epoch.
2. ``finetune_gdt_views.json``: ``AVideoDataset.__getitem__`` in train and test mode
   (UCF101 layout, ``run_finetune.sh``'s arguments) on a decoded clip whose pixels
   encode their (row, column), so each output view says which source pixels it shows.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import inspect
import json
import os
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import numpy as np
import torch

STUBS = ("kornia", "pandas", "ffmpeg", "joblib", "librosa", "librosa.display", "python_speech_features",
         "matplotlib", "matplotlib.pyplot", "model", "src.resnet", "src.vmz", "src.transformer")
# run_finetune.sh (873e630)
SH = dict(feature_extract=False, batch_size=32, epochs=12, optim_name="sgd", head_lr=0.0025, base_lr=0.00025,
          weight_decay=0.005, wd_base=0.005, momentum=0.9, lr_gamma=0.05, use_scheduler=True, lr_warmup_epochs=2,
          lr_milestones="6,10", colorjitter=True, agg_model=False, train_crop_size=128, test_crop_size=128,
          multi_crop=False, use_random_resize_crop=True, use_grayscale=False, use_gaussian=False,
          num_spatial_crops=3, val_clips_per_video=10, train_clips_per_video=10, clip_len=32, target_fps=30,
          steps_bet_clips=1, num_sec_aud=1, aud_sample_rate=24000, aud_spec_type=2, use_volume_jittering=True,
          use_audio_temp_jittering=False, z_normalize=False)


def import_official(gdt: Path):
    import torchvision  # noqa: F401  (imported before the stubs, which have no module spec)
    for name in STUBS:
        mod = types.ModuleType(name)
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mod.load_model = mod.Identity = mod.Parallel = mod.delayed = mod.logfbank = mod.use = None
        mod.resnet9 = mod.r2plus1d_18 = mod.r2plus1d_34 = mod.TransformerPooling = None
        sys.modules[name] = mod
    sys.path[:0] = [str(gdt), str(gdt / "datasets")]
    import eval_video  # noqa: E402  (the official module)
    return eval_video


def block(source: str, start: str, stop: str) -> str:
    """The official lines of ``main`` from the one starting with ``start`` up to ``stop``."""
    lines = source.splitlines()
    a = next(i for i, line in enumerate(lines) if start in line)
    b = next(i for i in range(a + 1, len(lines)) if stop in lines[i])
    return textwrap.dedent("\n".join(lines[a:b]))


def lr_fixture(ev, steps_per_epoch: int) -> dict:
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 1), torch.nn.BatchNorm3d(4), torch.nn.AdaptiveAvgPool3d(1),
                               torch.nn.Flatten())
    model = ev.Finetune_Model(base, num_ftrs=4, num_classes=101)
    args = argparse.Namespace(**SH)
    src = inspect.getsource(ev.main)
    ns = {"args": args, "model_without_ddp": model, "logger": ev.logger, "torch": torch,
          "GradualWarmupScheduler": ev.GradualWarmupScheduler}
    exec(block(src, "# Get params for optimization", "===========Check Grad"), ns)
    exec(block(src, "# linearly scale LR and set up optimizer", "# Checkpointing"), ns)
    optimizer, sched = ns["optimizer"], ns["lr_scheduler"]
    head = {id(p) for p in model.classifier.parameters()}
    kinds = ["head" if id(g["params"][0]) in head else "backbone" for g in optimizer.param_groups]
    head_i, back_i = kinds.index("head"), kinds.index("backbone")
    rows = []
    for epoch in range(args.epochs):  # main's loop: train one epoch, then lr_scheduler.step()
        for _ in range(steps_per_epoch):
            rows.append({"epoch": epoch, "head": optimizer.param_groups[head_i]["lr"],
                         "backbone": optimizer.param_groups[back_i]["lr"]})
            optimizer.step()
        sched.step()
    return {"source": "facebookresearch/GDT 873e630 eval_video.py main (scheduler + optimizer blocks), "
                      "src/scheduler.py GradualWarmupScheduler; run_finetune.sh arguments",
            "torch": torch.__version__, "epochs": args.epochs, "steps_per_epoch": steps_per_epoch,
            "head_lr": args.head_lr, "base_lr": args.base_lr, "warmup_epochs": args.lr_warmup_epochs,
            "milestones": [int(m) for m in args.lr_milestones.split(",")], "gamma": args.lr_gamma,
            "multiplier": 8, "tested_epochs": [e for e in range(args.epochs) if e > 6],
            "groups": [{"kind": k, "weight_decay": g["weight_decay"], "momentum": g["momentum"],
                        "shape": list(g["params"][0].shape)} for k, g in zip(kinds, optimizer.param_groups)],
            "classifier": {"weight_rows_orthonormal": bool(torch.allclose(
                model.classifier.weight[:4] @ model.classifier.weight[:4].T, torch.eye(4), atol=1e-6)),
                "weight_cols_orthonormal": bool(torch.allclose(
                    model.classifier.weight.T @ model.classifier.weight, torch.eye(4), atol=1e-6)),
                "bias_zero": bool((model.classifier.bias == 0).all())},
            "lr": rows}


def views_fixture(h: int = 240, w: int = 320, frames: int = 4, draws: int = 50) -> dict:
    """Geometry with the colour jitter off (it would blur the coordinate code); then, with
    it on as run_finetune.sh sets it, how many views of a flat grey clip changed colour."""
    avd = sys.modules["datasets.AVideoDataset"]  # the official dataset module, imported by eval_video
    vt = sys.modules["video_transforms"]
    code = torch.arange(h * w, dtype=torch.int64).view(h, w)
    flat = {"on": False}

    def decode(*a, **k):  # a "decoded" clip [T, H, W, 3]: channel 0 = row, channel 1 = column (/ 2 to fit uint8)
        rgb = torch.stack([code // w, code % w // 2, torch.full_like(code, 128)], -1)
        if flat["on"]:
            rgb = torch.full_like(rgb, 128)
        return rgb[None].expand(frames, h, w, 3).to(torch.uint8), None
    avd.decode = decode
    avd.get_video_container = lambda *a, **k: None
    out = {"source": "facebookresearch/GDT 873e630 datasets/AVideoDataset.py __getitem__ + video_transforms.py",
           "frame": [h, w], "mean": vt.MEAN, "std": vt.STD}
    with tempfile.TemporaryDirectory() as tmp:
        root, ann = Path(tmp) / "ucf101", Path(tmp) / "ann"
        (root / "A").mkdir(parents=True), ann.mkdir()
        (root / "A" / "v.avi").write_bytes(b"")
        for name in ("trainlist01.txt", "testlist01.txt"):
            (ann / name).write_text("A/v.avi 1\n")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            sets = {}
            for jitter in (False, True):
                args = argparse.Namespace(**{**SH, "colorjitter": jitter}, num_frames=SH["clip_len"],
                                          sample_rate=SH["steps_bet_clips"])
                kw = dict(ds_name="ucf101", root_dir=str(root) + "/", decode_audio=False, fold=1,
                          ucf101_annotation_path=str(ann), args=args)
                sets[jitter] = (avd.AVideoDataset(mode="train", num_train_clips=SH["train_clips_per_video"],
                                                  center_crop=False, **kw),
                                avd.AVideoDataset(mode="test", num_spatial_crops=SH["num_spatial_crops"],
                                                  num_ensemble_views=SH["val_clips_per_video"], **kw))
                for f in Path("datasets/data").glob("*.txt"):
                    f.unlink()  # the module caches the file list per mode
            train, test = sets[False]
            np.random.seed(0), torch.manual_seed(0)
            out["train_len_per_video"] = len(train)
            out["test_len_per_video"] = len(test)
            out["train"] = [window(train[0][0], h, w) for _ in range(draws)]
            out["test"] = [{"index": i, **window(test[i][0], h, w)} for i in range(len(test))]
            flat["on"] = True
            grey = (128 / 255 - vt.MEAN[0]) / vt.STD[0]
            for mode, ds in zip(("train", "test"), sets[True]):
                changed = [bool((ds[i % len(ds)][0] - grey).abs().max() > 1e-4) for i in range(draws)]
                out[f"{mode}_views_colour_changed_of_{draws}"] = sum(changed)
        finally:
            os.chdir(cwd)
    return out


def window(view: torch.Tensor, h: int, w: int) -> dict:
    """A view [C, T, S, S] (normalised) -> its shape and the source rows/columns it spans."""
    pix = (view[:, 0] * 0.225 + 0.45) * 255.0  # undo the normalisation (colour jitter may shift it)
    return {"shape": list(view.shape), "row_span": [float(pix[0].min()), float(pix[0].max())],
            "col_span": [2 * float(pix[1].min()), 2 * float(pix[1].max())],
            "flipped": bool(pix[1][:, 0].mean() > pix[1][:, -1].mean())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gdt", type=Path, required=True, help="a checkout of facebookresearch/GDT at 873e630")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps-per-epoch", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    ev = import_official(a.gdt.resolve())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "finetune_gdt_lr.json").write_text(json.dumps(lr_fixture(ev, a.steps_per_epoch), indent=1))
    (a.out / "finetune_gdt_views.json").write_text(json.dumps(views_fixture(), indent=1))


if __name__ == "__main__":
    main()
