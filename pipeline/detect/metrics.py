"""Localisation accuracy and detection mAP@0.5 against the sounding object's boxes.

mAP is COCO-style AP at IoU 0.5 (torchmetrics ``MeanAveragePrecision``, ``map_50``),
averaged over classes, with one image per frame: the ground truth is the sounding
object's box (frames without one are negatives only). Detections carry cluster ids;
they are renamed to classes by a naming (cluster -> class); detections of unnamed
clusters are dropped, and after renaming a class-wise NMS (IoU 0.5) merges the
duplicates that arise when several clusters name the same class.
"""
from __future__ import annotations

import numpy as np
import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import batched_nms, box_iou


def pixel_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return boxes.float() * torch.tensor([w, h, w, h], dtype=torch.float32)


def loc_hits(pred: list[np.ndarray], gt: torch.Tensor, thresh: float = 0.5) -> tuple[int, int]:
    """(frames whose first predicted box has IoU >= thresh with the ground truth, frames
    with a ground-truth box); a frame without a prediction is a miss."""
    hits, n = 0, 0
    for p, g in zip(pred, gt):
        if torch.isnan(g).any():
            continue
        n += 1
        if len(p):
            hits += float(box_iou(torch.as_tensor(p[:1], dtype=torch.float32), g[None].float())[0, 0]) >= thresh
    return hits, n


def loc_accuracy(pred: list[np.ndarray], gt: torch.Tensor, thresh: float = 0.5) -> float:
    """Fraction of frames with a ground-truth box that ``loc_hits`` counts as hits."""
    hits, n = loc_hits(pred, gt, thresh)
    return hits / n if n else float("nan")


def rename(dets: list[dict], naming: dict[int, int], nms_iou: float = 0.5) -> list[dict]:
    """Cluster ids -> class ids; unnamed clusters dropped; class-wise NMS after renaming."""
    out = []
    lut = torch.full((max(list(naming) + [0]) + 1,), -1, dtype=torch.long)
    for c, k in naming.items():
        lut[c] = k
    for d in dets:
        lab = d["labels"].long()
        cls = torch.where((lab >= 0) & (lab < len(lut)), lut[lab.clamp(0, len(lut) - 1)], -1)
        keep = cls >= 0
        boxes, scores, cls = d["boxes"][keep], d["scores"][keep], cls[keep]
        k = batched_nms(boxes.float(), scores.float(), cls, nms_iou)
        out.append({"boxes": boxes[k].float(), "scores": scores[k].float(), "labels": cls[k]})
    return out


def map50(dets: list[dict], gt: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]) -> float:
    """COCO AP@0.5 of class-labelled detections (pixel boxes) against normalised gt [N, 4]."""
    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy")
    targets = []
    for g, lab in zip(gt, labels):
        if torch.isnan(g).any():
            targets.append({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)})
        else:
            targets.append({"boxes": pixel_boxes(g[None], size), "labels": lab.reshape(1).long()})
    metric.update(dets, targets)
    return float(metric.compute()["map_50"])


def boxes_as_detections(boxes: list[np.ndarray], clusters: torch.Tensor, scores: torch.Tensor,
                        size: tuple[int, int]) -> list[dict]:
    """Heatmap boxes of the AV model as detections (its cluster, the heatmap's max as score)."""
    return [{"boxes": pixel_boxes(torch.as_tensor(b).reshape(-1, 4), size),
             "scores": torch.full((len(b),), float(s)), "labels": torch.full((len(b),), int(c))}
            for b, c, s in zip(boxes, clusters, scores)]
