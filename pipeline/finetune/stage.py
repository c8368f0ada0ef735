"""``python -m pipeline finetune RECIPE.yaml finetune.backbone=EXPORT finetune.splits=[ROOT, ...] out=DIR``:
full fine-tuning of a pretrained video backbone on each split, then its test (GDT's
protocol: ``configs/finetune_ucf101.yaml``, ``finetune_hmdb51.yaml``).

Per split (a shard root with ``train/`` and ``test/``): the epochs, warm-up and
milestones of the recipe become optimizer steps for this world size (an epoch draws
``clips_per_video`` random clips per training video), the ``finetune`` method trains on
the DeepSpeed engine (multi-rank, checkpoints, exact resume: a requeued job re-plans
the same steps and resumes), and the final weights are tested at video level (softmax
or logits averaged over 10 clips x 3 crops) and clip level. With ``test_epochs`` the
run stops after each of those epochs to score the test split too (GDT's eval_video.py
does so after epochs 7-11 and reports the best): the final epoch is the result, the
best epoch is reported beside it, marked as selected on the test split.
``DIR/split<k>/test.json`` per split (``epochs/epoch<e>.json`` per tested epoch),
``DIR/finetune.json`` with every split and the mean once all exist.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from pipeline.config import ConfigError
from pipeline.errors import InputError
from pipeline.eval.labels import class_names, label_map
from pipeline.finetune.multiview import accuracies, gather, predict
from pipeline.export.stage import export_run
from pipeline.models.export_spec import has_spec, read_spec
from pipeline.io.atomic import write_json
from pipeline.io.folder_lock import hold
from pipeline.loader.loader import ClipLoader
from pipeline.shard.index import has_index, index_path, read_index
from pipeline.train.distributed import barrier, setup_distributed
from pipeline.train.engine import hold_on_main, train
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method
from pipeline.train.methods.finetune import RunConfig

log = logging.getLogger(__name__)
DEFINITION = ("video-level top-1: {aggregate} averaged over {clips} uniformly spaced clips x {crops} spatial "
              "crops of every test video (GDT's test); clip-level top-1: each clip's centre crop on its own")
SELECTED = "selected on the test split, as the paper reports"


@dataclasses.dataclass(frozen=True)
class Split:
    name: str
    train: str
    test: str


def splits(cfg: RunConfig) -> list[Split]:
    roots = cfg.finetune.splits
    if not roots:
        raise ConfigError("finetune.splits: give the shard roots of the splits ([ROOT1, ROOT2, ...], "
                          "each with train/ and test/)")
    out = []
    for i, root in enumerate(roots):
        train, test = Path(root) / "train", Path(root) / "test"
        for d in (train, test):
            if not has_index(d):
                raise InputError(f"finetune.splits[{i}]={root}: {d} is not a finished shard folder (no {index_path(d).name})")
        out.append(Split(f"split{i + 1}", str(train), str(test)))
    return out


def resolve_backbone(cfg: RunConfig, is_main: bool) -> str:
    """An export folder as given, or a finished pretraining run exported into OUT/backbone."""
    src = Path(cfg.finetune.backbone)
    if has_spec(src / "video"):
        return str(src)
    if (src / "config.yaml").is_file() and final_weights(src).is_file():
        dest = Path(cfg.out) / "backbone"
        if is_main:  # array tasks of the splits: the first exports, the others wait for it
            with hold(dest.parent, "finetune", name=f".{dest.name}.lock", wait=True):
                if not has_spec(dest / "video"):
                    export_run(src, dest)
        barrier()
        return str(dest)
    raise InputError(f"finetune.backbone={src}: neither an export folder (video/config.json) nor a "
                     "finished training run (config.yaml + final/method.safetensors)")


def plan(cfg: RunConfig, split: Split, export: str, world: int) -> RunConfig:
    """The training run of one split: epochs -> steps for this world size, the loader on
    the split's training shards with the export's input, classes from the shards."""
    fc = cfg.finetune
    index = read_index(split.train)
    videos, classes = int(index["totals"]["videos"]), index["classes"]
    if not classes:
        raise InputError(f"{split.train}: the training shards have no class labels")
    if fc.classes and fc.classes < len(classes):
        raise ConfigError(f"finetune.classes={fc.classes}: {split.train} has {len(classes)} classes")
    spec = read_spec(Path(export) / "video")["input"]
    lc = cfg.loader
    clip = dataclasses.replace(lc.clip, positions=1, copies=1, reverse=False,
                               **({"frames": spec["frames"], "stride": spec["stride"]} if fc.match_export else {}))
    mean, std = (fc.pixel_mean, fc.pixel_std) if fc.pixel_mean else (spec["mean"], spec["std"])
    video = dataclasses.replace(lc.video, mean=tuple(mean), std=tuple(std),
                                **({"size": spec["size"]} if fc.match_export else {}))
    per_step = lc.batch_size * world * cfg.ds.grad_accum
    rounding = math.floor if fc.drop_last else math.ceil
    epoch = max(1, rounding(videos * fc.clips_per_video / per_step))  # optimizer steps per epoch
    loader = dataclasses.replace(lc, shards=split.train, sources=[], resampled=True, train=True,
                                 epoch_batches=epoch * cfg.ds.grad_accum, clip=clip, video=video)
    optim = epoch_optim(cfg, epoch)
    tuned = dataclasses.replace(fc, backbone=export, classes=fc.classes or len(classes))
    return dataclasses.replace(cfg, out=str(Path(cfg.out) / split.name), steps=max(1, round(fc.epochs * epoch)),
                               loader=loader, optim=optim, finetune=tuned)


def epoch_optim(cfg: RunConfig, steps_per_epoch: int):
    """The recipe's optimizer settings with the warm-up and milestones (in epochs) turned
    into optimizer steps, for an epoch of ``steps_per_epoch`` steps."""
    fc = cfg.finetune
    return dataclasses.replace(cfg.optim, warmup_steps=round(fc.warmup_epochs * steps_per_epoch),
                               steps_per_epoch=steps_per_epoch,
                               milestones=[round(m * steps_per_epoch) for m in fc.milestones])


def test_split(run_cfg: RunConfig, split: Split, info) -> dict:
    """Video- and clip-level accuracy of the run's final weights on the split's test shards."""
    fc = run_cfg.finetune
    method = build_method(run_cfg)
    method.load_state_dict(load_file(final_weights(run_cfg.out)))
    method.to(info.device)
    size = run_cfg.loader.video.size
    resize = fc.test_resize or round(size * 8 / 7)
    lc = run_cfg.loader
    test_cfg = dataclasses.replace(lc, shards=split.test, resampled=False, train=False, shuffle_shards=False,
                                   batch_size=fc.test_batch_size, clip=dataclasses.replace(lc.clip, positions=fc.test_clips),
                                   video=dataclasses.replace(lc.video, size=resize))
    canonical = class_names(split.train)
    ids = label_map(class_names(split.test), canonical)
    if len(canonical) > fc.classes:
        raise InputError(f"{split.test}: classes {canonical[fc.classes:]} never seen in {split.train}")
    pred = gather(predict(method, ClipLoader(test_cfg, info.rank, info.world_size), info.device, size,
                          fc.test_crops, ids, aggregate=fc.aggregate))
    if (pred["labels"] < 0).any():
        raise InputError(f"{split.test}: test samples without a label")
    return accuracies(pred)


def run_parts(cfg: RunConfig, stop_requested: Callable[[], bool] | None = None) -> dict:
    """Train and test every split not done yet (``finetune.only``: just that one); the
    engine's contract, so ``jobs`` can run it as a requeueable training task."""
    if cfg.method != "finetune":
        raise ConfigError(f"finetune: method must be finetune, got {cfg.method!r} "
                          "(start from configs/finetune_ucf101.yaml)")
    fc = cfg.finetune
    if fc.test_epochs and cfg.optim.schedule == "cosine":
        raise ConfigError("finetune.test_epochs: needs optim.schedule step or gdt (a cosine schedule depends on "
                          "the run's length, and each tested epoch ends a run)")
    todo = splits(cfg)
    if fc.only >= len(todo):
        raise ConfigError(f"finetune.only={fc.only}: there are {len(todo)} split(s)")
    info = setup_distributed()
    with hold_on_main(Path(cfg.out), "finetune", info.is_main, shared=fc.only >= 0):  # array tasks share it
        return _run_parts(cfg, fc, todo, info, stop_requested)


def _run_parts(cfg: RunConfig, fc, todo: list[Split], info, stop_requested) -> dict:
    export = resolve_backbone(cfg, info.is_main)
    out = Path(cfg.out)
    for i, split in enumerate(todo):
        result_path = out / split.name / "test.json"
        if (fc.only >= 0 and i != fc.only) or result_path.is_file():
            continue
        run_cfg = plan(cfg, split, export, info.world_size)
        tested = {}
        for epoch, steps in stages(run_cfg):
            epoch_path = out / split.name / "epochs" / f"epoch{epoch:02d}.json"
            if epoch_path.is_file():
                tested[epoch] = json.loads(epoch_path.read_text())
                continue
            result = train(dataclasses.replace(run_cfg, steps=steps), stop_requested)
            if result["status"] != "done":
                return result
            tested[epoch] = {"epoch": epoch, "steps": steps, **test_split(run_cfg, split, info)}
            if info.is_main and len(stages(run_cfg)) > 1:
                write_json(epoch_path, tested[epoch], indent=2)
            barrier()
        row = result_row(run_cfg, tested, export, split, info.world_size)
        if info.is_main:
            write_json(result_path, row, indent=2)
        barrier()
        log.info("finetune %s: video-level top-1 %.3f, clip-level %.3f (final epoch)", split.name,
                 row["video_top1"], row["clip_top1"])
        if "best" in row:
            log.info("finetune %s: best tested epoch %d, video-level top-1 %.3f (%s)", split.name,
                     row["best"]["epoch"], row["best"]["video_top1"], SELECTED)
    return {"status": "done", "out": str(out), **summarise(cfg, todo, info.is_main)}


def stages(run_cfg: RunConfig) -> list[tuple[int, int]]:
    """(0-based epoch, optimizer steps at its end) of every test: the ``test_epochs`` and
    always the final epoch."""
    fc, per_epoch = run_cfg.finetune, run_cfg.optim.steps_per_epoch
    final = math.ceil(fc.epochs) - 1
    return [(e, (e + 1) * per_epoch) for e in sorted(set(fc.test_epochs) - {final})] + [(final, run_cfg.steps)]


def result_row(run_cfg: RunConfig, tested: dict, export: str, split: Split, world: int) -> dict:
    """The final epoch's metrics; with several tested epochs each of them and the best,
    marked as selected on the test split."""
    fc = run_cfg.finetune
    final = max(tested)
    row = {**{k: v for k, v in tested[final].items() if k not in ("epoch", "steps")},
           "final_epoch": final, "pretrained": fc.pretrained, "backbone": export, "train": split.train,
           "test": split.test, "steps": run_cfg.steps, "world_size": world,
           "views": f"{fc.test_clips} clips x {fc.test_crops} crops", "aggregate": fc.aggregate}
    if len(tested) > 1:
        row["per_epoch"] = {str(e): tested[e] for e in sorted(tested)}
        best = max(sorted(tested), key=lambda e: tested[e]["video_top1"])  # the first of equals, as eval_video.py
        row["best"] = {"epoch": best, "video_top1": tested[best]["video_top1"],
                       "clip_top1": tested[best]["clip_top1"], "selection": SELECTED,
                       "epochs_considered": sorted(tested)}
    return row


def summarise(cfg: RunConfig, todo: list[Split], is_main: bool) -> dict:
    paths = {s.name: Path(cfg.out) / s.name / "test.json" for s in todo}
    if not all(p.is_file() for p in paths.values()):
        return {"complete": False}
    rows = {name: json.loads(p.read_text()) for name, p in paths.items()}
    keys = ("video_top1", "clip_top1")
    fc = cfg.finetune
    summary = {"definition": DEFINITION.format(clips=fc.test_clips, crops=fc.test_crops, aggregate=fc.aggregate),
               "pretrained": fc.pretrained, "splits": rows, "reported": "final epoch",
               "mean": {k: float(np.mean([r[k] for r in rows.values()])) for k in keys}, "complete": True}
    if all("best" in r for r in rows.values()):
        summary["best_epoch_mean"] = {"selection": SELECTED, **{
            k: float(np.mean([r["best"][k] for r in rows.values()])) for k in keys}}
    if is_main:
        write_json(Path(cfg.out) / "finetune.json", summary, indent=2)
    return summary


def run(cfg: RunConfig) -> dict:
    """The ``finetune`` stage: every split in turn, then the mean."""
    torch.manual_seed(cfg.seed)
    return run_parts(cfg)
