"""PNG grids for the run folder: detections with class names, and heatmap overlays.

Green dashed = ground truth (the sounding object); coloured = predictions. Drawn with
matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from pipeline.detect.pseudo_boxes import upsample  # noqa: E402
from pipeline.io.atomic import atomic_open  # noqa: E402


def _grid(n: int, cols: int):
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def _box(ax, xyxy, colour, dashed=False, text=None):
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=1.5,
                           linestyle="--" if dashed else "-"))
    if text:
        ax.text(x0, y0 - 1, text, color="white", fontsize=6, va="bottom",
                bbox=dict(facecolor=colour, alpha=0.8, pad=0.5, edgecolor="none"))


def _gt(ax, g, size):
    if not torch.isnan(g).any():
        h, w = size
        _box(ax, g * torch.tensor([w, h, w, h]), "lime", dashed=True)


@matplotlib.rc_context({"text.parse_math": False})  # class names are text, "$" included
def detections_grid(path: Path, images: torch.Tensor, dets: list[dict], gt: torch.Tensor,
                    labels: torch.Tensor, names: list[str], score_min: float = 0.3,
                    per_image: int = 3, cols: int = 4) -> Path:
    """Frames with their top detections (class name, score) and the ground truth."""
    fig, axes = _grid(len(images), cols)
    size = tuple(images.shape[-2:])
    colours = plt.get_cmap("tab10")
    for ax, img, d, g, lab in zip(axes, images, dets, gt, labels):
        ax.imshow(img.permute(1, 2, 0).numpy())
        _gt(ax, g, size)
        keep = (d["scores"] >= score_min).nonzero().flatten()[:per_image]
        for i in keep.tolist():
            c = int(d["labels"][i])
            name = names[c] if 0 <= c < len(names) else f"class {c}"
            _box(ax, d["boxes"][i], colours(c % 10), text=f"{name} {float(d['scores'][i]):.2f}")
        truth = names[int(lab)] if 0 <= int(lab) < len(names) else "?"
        ax.set_title(f"gt: {truth}", fontsize=6)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path


@matplotlib.rc_context({"text.parse_math": False})
def heatmap_grid(path: Path, images: torch.Tensor, heat: torch.Tensor, boxes: list[np.ndarray],
                 gt: torch.Tensor, clusters: torch.Tensor, cols: int = 4) -> Path:
    """Each frame beside its heatmap overlay with the pseudo box (yellow) and ground truth."""
    n = len(images)
    fig, axes = _grid(2 * n, 2 * cols)
    size = tuple(images.shape[-2:])
    h, w = size
    up = upsample(heat, size).numpy()
    axes = list(axes)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy()
        a, b = axes[2 * i], axes[2 * i + 1]
        a.imshow(img)
        _gt(a, gt[i], size)
        b.imshow(img)
        b.imshow(up[i], cmap="jet", alpha=0.5)
        for box in boxes[i]:
            _box(b, box * np.array([w, h, w, h]), "yellow", text=f"cluster {int(clusters[i])}")
        _gt(b, gt[i], size)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return path
