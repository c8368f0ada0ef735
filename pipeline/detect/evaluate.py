"""The numbers of ``detect_eval.json`` and the pictures, from the held-out frames, in one
streaming pass over the evaluation shards (and one over the training shards for the
k-shot pool); only small per-frame arrays are kept (``records``).

- ``loc_acc``: IoU >= 0.5 of the raw heatmap boxes (the AV model, with audio);
- ``map50`` (Hungarian naming), ``map50_argmax``, ``map50_<k>shot`` (prototypes, mean
  over draws): the detector alone, images only, COCO AP@0.5 of the sounding object;
- the naming labels come from the detector's ROI head on the ground-truth boxes (which
  cluster it calls each labelled object): the eval set for Hungarian/argmax, k shots of
  the training set for prototypes, drawn from a uniform sample of ``shot_pool`` labelled
  training frames per class;
- ``av_map50``: the AV model's own heatmap boxes as detections (needs audio), and the
  same with the randomly initialised AV model in ``random_init``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.detect.detector import classify_boxes, predict
from pipeline.detect.frames import frame_batches
from pipeline.detect.metrics import boxes_as_detections, loc_hits, map50, rename
from pipeline.detect.naming import argmax_naming, hungarian_naming, kshot_naming
from pipeline.detect.pictures import detections_grid, heatmap_grid
from pipeline.detect.pseudo_boxes import heatmap_boxes
from pipeline.detect.records import Column, Detections, Reservoir
from pipeline.eval.clustering import clustering_metrics


@dataclass
class AVRecords:
    dets: Detections = field(default_factory=Detections)        # heatmap boxes as detections
    cluster: Column = field(default_factory=lambda: Column(np.int32))
    hits: int = 0
    with_gt: int = 0


@dataclass
class EvalRecords:
    size: tuple[int, int]
    gt: Column = field(default_factory=lambda: Column(np.float32))
    label: Column = field(default_factory=lambda: Column(np.int32))
    det_cluster: Column = field(default_factory=lambda: Column(np.int32))  # ROI head on the true box; -1
    dets: Detections = field(default_factory=Detections)
    av: dict[str, AVRecords] = field(default_factory=dict)
    pictures: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.dets)

    def labelled(self) -> np.ndarray:
        return np.flatnonzero(self.det_cluster.array() >= 0)


@torch.no_grad()
def eval_pass(loader, detector, models: dict, beta: float, max_boxes: int, pictures: int,
              seed: int) -> EvalRecords:
    """Detector and AV models over every frame of ``loader``'s shards, once."""
    size = (loader.cfg.video.size, loader.cfg.video.size)
    rec = EvalRecords(size=size, av={name: AVRecords() for name in models})
    drawn = Reservoir(pictures, seed)
    for m in models.values():
        m.eval()
    for fb in frame_batches(loader, desc="eval frames"):
        base = len(rec.dets)
        rec.gt.extend(fb.gt)
        rec.label.extend(fb.label)
        rec.dets.extend(predict(detector, fb.images))
        clu = torch.full((len(fb),), -1, dtype=torch.long)
        idx = fb.labelled()
        if len(idx):
            clu[idx] = classify_boxes(detector, fb.images[idx], fb.gt[idx]).argmax(1)
        rec.det_cluster.extend(clu)
        heat, av_boxes = None, None
        for name, model in models.items():
            out = model.localise(fb.batch)
            boxes = heatmap_boxes(out["heat"], size, beta, max_boxes)
            r = rec.av[name]
            r.dets.extend(boxes_as_detections(boxes, out["cluster"], out["heat"].flatten(1).amax(1), size))
            r.cluster.extend(out["cluster"])
            hits, n = loc_hits(boxes, fb.gt)
            r.hits, r.with_gt = r.hits + hits, r.with_gt + n
            if name == "trained":
                heat, av_boxes = out["heat"].float().cpu(), boxes
        for i in (fb.frame == 0).nonzero().flatten().tolist():  # one picture per clip at most
            slot = drawn.offer()
            if slot >= 0:
                drawn.items[slot] = {"index": base + i, "image": fb.images[i].clone(),
                                     "heat": None if heat is None else heat[i].clone(),
                                     "boxes": None if av_boxes is None else av_boxes[i]}
    rec.dets.finish()
    for r in rec.av.values():
        r.dets.finish()
    rec.pictures = sorted(drawn.items, key=lambda p: p["index"])
    return rec


@torch.no_grad()
def shot_pool(loader, detector, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster probabilities of the true boxes of up to ``per_class`` labelled training
    frames per class (a uniform sample over one pass): the pool k shots are drawn from."""
    pools: dict[int, Reservoir] = {}
    for fb in frame_batches(loader, desc="shot pool"):
        keep, slots = [], []
        for i in fb.labelled().tolist():
            c = int(fb.label[i])
            pool = pools.setdefault(c, Reservoir(per_class, seed + c))
            slot = pool.offer()
            if slot >= 0:
                keep.append(i)
                slots.append((pool, slot))
        if keep:
            probs = classify_boxes(detector, fb.images[keep], fb.gt[keep]).numpy()
            for (pool, slot), i, p in zip(slots, keep, probs):
                pool.items[slot] = (p, int(fb.label[i]))
    items = [it for c in sorted(pools) for it in pools[c].items]
    if not items:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.stack([p for p, _ in items]), np.asarray([c for _, c in items])


def _truth(rec: EvalRecords) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(rec.gt.array().reshape(-1, 4)), torch.from_numpy(rec.label.array().astype(np.int64))


def av_rows(rec: EvalRecords) -> dict:
    """Per AV model: loc_acc, AV-box mAP (Hungarian on its own clusters), cluster quality."""
    rows = {}
    gt, labels = _truth(rec)
    idx = rec.labelled()
    for name, r in rec.av.items():
        row = {"loc_acc": r.hits / r.with_gt if r.with_gt else float("nan")}
        if len(idx):
            lab, clu = labels.numpy()[idx], r.cluster.array()[idx]
            naming = hungarian_naming(lab, clu)
            row["av_map50"] = map50(rename(r.dets.all(), naming), gt, labels, rec.size)
            row.update({f"av_{k}": v for k, v in clustering_metrics(lab, clu).items()})
        rows[name] = row
    return rows


def detector_rows(rec: EvalRecords, pool: tuple[np.ndarray, np.ndarray], shots: list[int],
                  trials: int, seed: int) -> tuple[dict, dict[int, int]]:
    """mAP@0.5 of the detector under each naming; returns (row, Hungarian naming)."""
    idx = rec.labelled()
    if not len(idx):
        return {"map50": float("nan")}, {}
    gt, labels = _truth(rec)
    dets = rec.dets.all()
    lab, clu = labels.numpy()[idx], rec.det_cluster.array()[idx]
    hung = hungarian_naming(lab, clu)
    row = {"map50": map50(rename(dets, hung), gt, labels, rec.size),
           "map50_argmax": map50(rename(dets, argmax_naming(lab, clu)), gt, labels, rec.size)}
    row.update({f"det_{k}": v for k, v in clustering_metrics(lab, clu).items()})
    sprobs, slab = pool
    if len(slab):
        rng = np.random.default_rng(seed)
        for k in shots:
            vals = [map50(rename(dets, kshot_naming(sprobs, slab, k, rng)), gt, labels, rec.size)
                    for _ in range(trials)]
            row[f"map50_{k}shot"] = float(np.mean(vals))
            row[f"map50_{k}shot_std"] = float(np.std(vals))
    return row, hung


def draw(out, rec: EvalRecords, hung: dict[int, int], names: list[str]) -> dict[str, str]:
    """detections.png (and heatmaps.png with the trained AV model) of the drawn frames."""
    if not rec.pictures:
        return {}
    sel = [p["index"] for p in rec.pictures]
    images = torch.stack([p["image"] for p in rec.pictures])
    gt, labels = _truth(rec)
    named = rename([rec.dets[i] for i in sel], hung)
    paths = {"detections": detections_grid(out / "detections.png", images, named, gt[sel], labels[sel], names)}
    if "trained" in rec.av and rec.pictures[0]["heat"] is not None:
        heat = torch.stack([p["heat"] for p in rec.pictures])
        clusters = torch.from_numpy(rec.av["trained"].cluster.array()[sel])
        paths["heatmaps"] = heatmap_grid(out / "heatmaps.png", images, heat, [p["boxes"] for p in rec.pictures],
                                         gt[sel], clusters)
    return {k: str(v) for k, v in paths.items()}
