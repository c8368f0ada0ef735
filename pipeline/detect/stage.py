"""``python -m pipeline detect configs/detect_tiny.yaml out=DIR shards=DIR [eval_shards=DIR]``.

Steps (``steps``, default all, each reading its predecessor's files from ``out``):
  av        train the AV localisation + clustering model with the engine (``out/av``)
  pseudo    heatmap boxes + clusters of the training frames -> ``pseudo_labels/<shard>.jsonl``
  detector  Faster R-CNN on those frames and pseudo labels -> ``detector/detector.safetensors``
  eval      held-out frames: ``detect_eval.json``, ``detections.png``, ``heatmaps.png``
Under torchrun the av step trains on every rank; the rest runs on rank 0. Every step
after av streams its frames from the shards (the detector re-reads them, joined to the
side files by (key, frame)), so memory does not grow with the number of clips.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipeline.config import MISSING, ConfigError, save_config
from pipeline.detect import evaluate
from pipeline.detect.detector import (DetectorConfig, build_detector, init_backbone_from_av,
                                      load_detector, save_detector, train_detector)
from pipeline.detect.frames import epochs, frame_loader_config
from pipeline.detect.localise import load_av_model, random_av_model, write_pseudo_labels
from pipeline.detect.pseudo_labels import PseudoLabels
from pipeline.errors import InputError
from pipeline.io.atomic import atomic_open, write_json
from pipeline.io.folder_lock import hold
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards
from pipeline.objectives.gather import world
from pipeline.shard.index import class_names, has_index
from pipeline.train.methods.avloc import RunConfig as AVLocRun

log = logging.getLogger(__name__)
STEPS = ("av", "pseudo", "detector", "eval")
PSEUDO = "pseudo_labels"  # the side files' folder in out


@dataclass
class DetectConfig:
    out: str = field(default=MISSING, metadata={"help": "run folder (av/, pseudo_labels/, detector/, detect_eval.json, PNGs)"})
    shards: str = field(default=MISSING, metadata={"help": "training shards (unlabelled use: audio + frames)"})
    eval_shards: str = field(default="", metadata={"help": "held-out shards with boxes and labels for evaluation; empty = shards"})
    steps: list[str] = field(default_factory=lambda: list(STEPS), metadata={"help": f"parts to run, in order: {', '.join(STEPS)}"})
    frames_per_clip: int = field(default=4, metadata={"help": "evenly spaced frames (with their audio) taken per clip", "min": 1})
    beta: float = field(default=0.5, metadata={"help": "pseudo box threshold: beta * max + (1 - beta) * mean of the heatmap", "min": 0, "max": 1})
    max_boxes: int = field(default=1, metadata={"help": "pseudo boxes per frame (largest connected components)", "min": 1})
    batch_size: int = field(default=32, metadata={"help": "clips per batch when reading frames", "min": 1})
    shuffle_buffer: int = field(default=64, metadata={
        "help": "clips shuffled in the loader while the detector trains (its shard order is shuffled too)", "min": 1})
    workers: int = field(default=2, metadata={"help": "loader worker processes when reading frames", "min": 0})
    shots: list[int] = field(default_factory=lambda: [1, 10], metadata={"help": "k of the k-shot prototype namings", "min": 1})
    shot_trials: int = field(default=5, metadata={"help": "random draws of the k shots (mean reported)", "min": 1})
    shot_pool: int = field(default=256, metadata={
        "help": "labelled training frames per class (a uniform sample over one pass) the k shots are drawn from",
        "min": 1})
    random_init: bool = field(default=True, metadata={"help": "also evaluate the AV model at initialisation (baseline row)"})
    pictures: int = field(default=16, metadata={"help": "frames in detections.png / heatmaps.png (drawn at random, one per clip)", "min": 1})
    seed: int = field(default=0, metadata={"help": "seed of the k-shot draws and of the pictures", "min": 0})
    threads: int = field(default=0, metadata={
        "help": "torch intra-op threads of this process; 0 = torch's default. On a CPU shared "
                "with other jobs, 1 avoids the spin-waiting of oversubscribed OpenMP threads "
                "(measured 13x less CPU per step here)", "min": 0})
    av: AVLocRun = field(default_factory=lambda: AVLocRun(out=""), metadata={
        "help": "the AV model's training run (engine config); out defaults to OUT/av, loader.shards to shards"})
    detector: DetectorConfig = field(default_factory=DetectorConfig)


def _clock() -> tuple[float, float]:
    """(wall, CPU of this process and its finished children such as loader workers)."""
    t = os.times()
    return time.time(), t.user + t.system + t.children_user + t.children_system


def _resolve(cfg: DetectConfig) -> AVLocRun:
    bad = [s for s in cfg.steps if s not in STEPS]
    if bad or not cfg.steps:
        raise ConfigError(f"steps: {bad or 'empty'}; choose from {', '.join(STEPS)}")
    av = cfg.av
    if av.method != "avloc":
        raise ConfigError(f"av.method: {av.method!r}; the detect stage trains avloc")
    av.out = av.out or str(Path(cfg.out) / "av")
    if not av.loader.shards and not av.loader.sources:
        av.loader.shards = cfg.shards
    return av


def run(cfg: DetectConfig) -> dict:
    # rank 0 owns the folder (a launcher's other ranks only join the av training)
    with hold(Path(cfg.out), "detect", enabled=int(os.environ.get("RANK", "0")) == 0):
        return _run(cfg)


def _run(cfg: DetectConfig) -> dict:
    av_cfg = _resolve(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, dict] = {}

    def timed(name, fn, *a, **k):
        w0, c0 = _clock()
        res = fn(*a, **k)
        w1, c1 = _clock()
        times[name] = {"wall_s": round(w1 - w0, 1), "cpu_s": round(c1 - c0, 1)}
        log.info("detect %s: %.1f s wall, %.1f s CPU", name, w1 - w0, c1 - c0)
        return res

    if "av" in cfg.steps:
        timed("av", _train_av, av_cfg)
        if world()[0] != 0:
            return {"status": "done", "rank": world()[0]}
    save_config(cfg, out / "detect_config.yaml")
    model, av_cfg = load_av_model(Path(av_cfg.out))
    lc = av_cfg.loader

    def frames(shards: str, shuffle: int = 0) -> LoaderConfig:
        return frame_loader_config(lc, shards, cfg.frames_per_clip, cfg.batch_size, cfg.workers,
                                   shuffle, cfg.detector.seed)

    def loader(shards: str) -> ClipLoader:
        return ClipLoader(frames(shards))

    result: dict = {"out": str(out)}
    if "pseudo" in cfg.steps:
        result["pseudo_labels"] = timed("pseudo", write_pseudo_labels, loader(cfg.shards), model,
                                        out / PSEUDO, cfg.beta, cfg.max_boxes)
    if "detector" in cfg.steps:
        table = PseudoLabels(out / PSEUDO, expand_shards(cfg.shards))
        with closing(labelled_frames(frames(cfg.shards, cfg.shuffle_buffer), table)) as stream:
            timed("detector", _train_detector, cfg, av_cfg, model, stream, out)
    if "eval" in cfg.steps:
        result.update(timed("eval", _evaluate, cfg, av_cfg, model, loader, out))
    result["seconds"] = times
    times_path = out / "detect_times.json"  # merged: a later run of some steps keeps the others
    old = json.loads(times_path.read_text()) if times_path.is_file() else {}
    write_json(times_path, {**old, **times})
    return result


def labelled_frames(lcfg, table: PseudoLabels):
    """The training frames forever (reshuffled each epoch), each with its pseudo boxes
    and cluster from the side files; frames without a box are background only."""
    for fb in epochs(lcfg):
        for i in range(len(fb)):
            boxes, cluster = table.get(fb.key[i], int(fb.frame[i]))
            yield fb.images[i].clone(), boxes, cluster  # a clone: the batch is not kept alive


def _finite(d: dict) -> dict:
    """The dict without float NaN/inf values (recursively)."""
    return {k: _finite(v) if isinstance(v, dict) else v for k, v in d.items()
            if not (isinstance(v, float) and not math.isfinite(v))}


def _train_av(av_cfg: AVLocRun) -> dict:
    from pipeline.train.engine import train
    return train(av_cfg)


def _train_detector(cfg, av_cfg, model, frames, out: Path) -> None:
    torch.manual_seed(cfg.detector.seed)
    size = av_cfg.loader.video.size
    mean, std = av_cfg.loader.video.mean, av_cfg.loader.video.std
    det = build_detector(cfg.detector, av_cfg.avloc.clusters, mean, std, size)
    if cfg.detector.backbone == "tiny" and cfg.detector.init_from_av:
        copied = init_backbone_from_av(det, model.state_dict())
        log.info("detector backbone: %s", f"{copied} tensors from the AV model" if copied
                 else "random init (architecture differs from the AV frame net)")
    history = train_detector(det, frames, cfg.detector)
    save_detector(det, out / "detector", cfg.detector, av_cfg.avloc.clusters, mean, std, size)
    with atomic_open(out / "detector" / "losses.jsonl") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in history)


def _names(shards: str) -> list[str]:
    """Class names for the k-shot naming; shards without an index are unlabelled here."""
    return class_names(shards) if has_index(shards) else []


def _evaluate(cfg, av_cfg, model, loader, out: Path) -> dict:
    detector, _ = load_detector(out / "detector")
    names = _names(cfg.eval_shards or cfg.shards)
    if cfg.eval_shards and _names(cfg.shards) and names != _names(cfg.shards):
        raise InputError(f"{cfg.eval_shards}: its classes differ from those of {cfg.shards}; "
                         "the k-shot naming needs the same class ids")
    models = {"trained": model}
    if cfg.random_init:
        models["random"] = random_av_model(av_cfg)
    rec = evaluate.eval_pass(loader(cfg.eval_shards or cfg.shards), detector, models, cfg.beta,
                             cfg.max_boxes, cfg.pictures, cfg.seed)
    pool = evaluate.shot_pool(loader(cfg.shards), detector, cfg.shot_pool, cfg.seed)
    av_rows = evaluate.av_rows(rec)
    det_row, hung = evaluate.detector_rows(rec, pool, list(cfg.shots), cfg.shot_trials, cfg.seed)
    with_gt = int(np.isfinite(rec.gt.array().reshape(-1, 4)).all(1).sum())
    report = {**det_row, **av_rows["trained"], "frames": len(rec), "frames_with_box": with_gt,
              "clusters": av_cfg.avloc.clusters, "classes": names,
              "naming": {str(k): v for k, v in sorted(hung.items())}}
    if "random" in av_rows:
        report["random_init"] = av_rows["random"]
    write_json(out / "detector" / "naming.json", {"hungarian": {
        str(c): names[k] if k < len(names) else str(k) for c, k in sorted(hung.items())}})
    report["pictures"] = evaluate.draw(out, rec, hung, names)
    report = _finite(report)  # NaN is not JSON: a metric without ground truth is left out
    if not report["frames_with_box"]:
        report["note"] = "no ground-truth boxes in the evaluation shards: mAP and loc_acc need them"
    write_json(out / "detect_eval.json", report)
    log.info("detect eval: map50 %s, loc_acc %s", report.get("map50", "n/a"), report.get("loc_acc", "n/a"))
    return report
