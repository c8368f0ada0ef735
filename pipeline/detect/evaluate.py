"""The numbers of ``detect_eval.json`` and the pictures, from the held-out frames.

- ``loc_acc``: IoU >= 0.5 of the raw heatmap boxes (the AV model, with audio);
- ``map50`` (Hungarian naming), ``map50_argmax``, ``map50_<k>shot`` (prototypes, mean
  over draws): the detector alone, images only, COCO AP@0.5 of the sounding object;
- the naming labels come from the detector's ROI head on the ground-truth boxes (which
  cluster it calls each labelled object): the eval set for Hungarian/argmax, k shots of
  the training set for prototypes;
- ``av_map50``: the AV model's own heatmap boxes as detections (needs audio), and the
  same with the randomly initialised AV model in ``random_init``.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.detect.detector import classify_boxes, predict
from pipeline.detect.frames import FrameSet
from pipeline.detect.metrics import boxes_as_detections, loc_accuracy, map50, rename
from pipeline.detect.naming import argmax_naming, hungarian_naming, kshot_naming
from pipeline.detect.pictures import detections_grid, heatmap_grid
from pipeline.detect.pseudo_boxes import heatmap_boxes
from pipeline.eval.clustering import clustering_metrics


def _labelled(frames: FrameSet) -> torch.Tensor:
    return (frames.has_gt() & (frames.label >= 0)).nonzero().flatten()


def av_rows(frames: FrameSet, beta: float, max_boxes: int) -> tuple[dict, dict]:
    """Per AV model: loc_acc, AV-box mAP (Hungarian on its own clusters), cluster quality."""
    rows, boxes_of = {}, {}
    idx = _labelled(frames)
    for name, out in frames.av.items():
        boxes = heatmap_boxes(out["heat"], frames.size, beta, max_boxes)
        boxes_of[name] = boxes
        row = {"loc_acc": loc_accuracy(boxes, frames.gt)}
        if len(idx):
            lab, clu = frames.label[idx].numpy(), out["cluster"][idx].numpy()
            naming = hungarian_naming(lab, clu)
            dets = boxes_as_detections(boxes, out["cluster"], out["heat"].flatten(1).amax(1), frames.size)
            row["av_map50"] = map50(rename(dets, naming), frames.gt, frames.label, frames.size)
            row.update({f"av_{k}": v for k, v in clustering_metrics(lab, clu).items()})
        rows[name] = row
    return rows, boxes_of


def detector_rows(detector, eval_frames: FrameSet, shot_frames: FrameSet, shots: list[int],
                  trials: int, seed: int) -> tuple[dict, list[dict], dict[int, int]]:
    """mAP@0.5 of the detector under each naming; returns (row, raw detections, Hungarian naming)."""
    dets = predict(detector, eval_frames.images)
    idx = _labelled(eval_frames)
    if not len(idx):
        return {"map50": float("nan")}, dets, {}
    probs = classify_boxes(detector, eval_frames.images[idx], eval_frames.gt[idx])
    lab, clu = eval_frames.label[idx].numpy(), probs.argmax(1).numpy()
    gt, labels, size = eval_frames.gt, eval_frames.label, eval_frames.size
    hung = hungarian_naming(lab, clu)
    row = {"map50": map50(rename(dets, hung), gt, labels, size),
           "map50_argmax": map50(rename(dets, argmax_naming(lab, clu)), gt, labels, size)}
    row.update({f"det_{k}": v for k, v in clustering_metrics(lab, clu).items()})
    sidx = _labelled(shot_frames)
    if len(sidx):
        sprobs = classify_boxes(detector, shot_frames.images[sidx], shot_frames.gt[sidx]).numpy()
        slab = shot_frames.label[sidx].numpy()
        rng = np.random.default_rng(seed)
        for k in shots:
            vals = [map50(rename(dets, kshot_naming(sprobs, slab, k, rng)), gt, labels, size)
                    for _ in range(trials)]
            row[f"map50_{k}shot"] = float(np.mean(vals))
            row[f"map50_{k}shot_std"] = float(np.std(vals))
    return row, dets, hung


def pick_pictures(frames: FrameSet, n: int) -> list[int]:
    """n frames spread over the set, one per clip where possible."""
    first = {}
    for i, k in enumerate(frames.key):
        first.setdefault(k, i)
    pool = sorted(first.values()) if len(first) >= n else list(range(len(frames)))
    return [pool[int(j)] for j in np.linspace(0, len(pool) - 1, min(n, len(pool))).round()]


def draw(out, eval_frames: FrameSet, dets: list[dict], hung: dict[int, int], boxes: list[np.ndarray],
         names: list[str], n: int) -> dict[str, str]:
    sel = pick_pictures(eval_frames, n)
    named = rename([dets[i] for i in sel], hung)
    paths = {"detections": detections_grid(out / "detections.png", eval_frames.images[sel], named,
                                           eval_frames.gt[sel], eval_frames.label[sel], names)}
    if "trained" in eval_frames.av:
        av = eval_frames.av["trained"]
        paths["heatmaps"] = heatmap_grid(out / "heatmaps.png", eval_frames.images[sel], av["heat"][sel],
                                         [boxes[i] for i in sel], eval_frames.gt[sel], av["cluster"][sel])
    return {k: str(v) for k, v in paths.items()}
