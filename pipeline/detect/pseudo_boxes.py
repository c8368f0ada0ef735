"""Heatmap -> pseudo box: the paper's rule, on the heatmap upsampled to the frame.

Threshold at ``beta * max + (1 - beta) * mean`` (relative to each heatmap, so the rule
does not depend on the cosine's scale), keep the largest connected component (a
sounding object is one blob; stray high locations elsewhere are noise) and take its
tight box. Boxes are normalised (x0, y0, x1, y1) in [0, 1], x1/y1 exclusive.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def upsample(heat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[n, h, w] -> [n, H, W], bilinear (align_corners=False: cell centres line up)."""
    return F.interpolate(heat[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def threshold_mask(heat: np.ndarray, beta: float) -> np.ndarray:
    """Locations at or above beta * max + (1 - beta) * mean."""
    thr = beta * float(heat.max()) + (1.0 - beta) * float(heat.mean())
    return heat >= thr


def component_boxes(mask: np.ndarray, max_boxes: int = 1) -> np.ndarray:
    """Tight normalised boxes [m, 4] of the ``max_boxes`` largest 4-connected components
    of a boolean [H, W] mask, largest first (ties: the first in raster order)."""
    h, w = mask.shape
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 4), np.float32)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-sizes, kind="stable")[:max_boxes]
    slices = ndimage.find_objects(labels)
    out = []
    for i in order:
        sy, sx = slices[i]
        out.append([sx.start / w, sy.start / h, sx.stop / w, sy.stop / h])
    return np.asarray(out, np.float32)


def heatmap_boxes(heat: torch.Tensor, size: tuple[int, int], beta: float = 0.5,
                  max_boxes: int = 1) -> list[np.ndarray]:
    """Heatmaps [n, h, w] of frames of ``size`` (H, W) -> per frame its boxes [m, 4]."""
    up = upsample(heat, size).cpu().numpy()
    return [component_boxes(threshold_mask(u, beta), max_boxes) for u in up]
