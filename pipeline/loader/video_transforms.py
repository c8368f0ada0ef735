"""Clip-level video augmentation: one set of parameters for every frame of a clip.

Parameters are drawn from an explicit numpy Generator, so a sample's augmentation is a
function of (seed, epoch, rank, worker, sample position) and a resumed run reproduces it.
Boxes (normalised x0, y0, x1, y1 per frame) follow the crop and flip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.loader.colour_jitter import jitter_affine, normalised_affine
from pipeline.loader.fused_video import crop_resize

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


@dataclass
class VideoAugConfig:
    size: int = field(default=112, metadata={"help": "output crop size (square), pixels", "min": 1})
    scale: tuple[float, float] = field(default=(0.3, 1.0), metadata={"help": "random resized crop: area fraction range", "above": 0, "max": 1})
    ratio: tuple[float, float] = field(default=(0.75, 1.3333), metadata={"help": "random resized crop: aspect ratio range", "above": 0})
    flip: float = field(default=0.5, metadata={"help": "probability of a horizontal flip", "min": 0, "max": 1})
    jitter: float = field(default=0.4, metadata={"help": "colour jitter strength (brightness, contrast, saturation; hue = jitter/4)", "min": 0})
    jitter_prob: float = field(default=0.8, metadata={"help": "probability of applying colour jitter", "min": 0, "max": 1})
    mean: tuple[float, float, float] = field(default=KINETICS_MEAN, metadata={"help": "per-channel mean for normalisation"})
    std: tuple[float, float, float] = field(default=KINETICS_STD, metadata={"help": "per-channel std for normalisation", "above": 0})


def crop_params(h: int, w: int, scale, ratio, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop (Inception-style sampling)."""
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def centre_params(h: int, w: int) -> tuple[int, int, int, int]:
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def crop_boxes(boxes: torch.Tensor, h: int, w: int, top: int, left: int, ch: int, cw: int,
               flip: bool) -> torch.Tensor:
    """Map normalised boxes [T, 4] into the crop; boxes left with no area become NaN."""
    # a few numbers: numpy is ~10x cheaper than torch here; NaN rows stay NaN
    scale = np.array([w / cw, h / ch, w / cw, h / ch])
    shift = np.array([left / cw, top / ch, left / cw, top / ch])
    out = np.clip(boxes.numpy() * scale - shift, 0.0, 1.0)
    if flip:
        out = out[:, [2, 1, 0, 3]]
        out[:, [0, 2]] = 1.0 - out[:, [0, 2]]
    out[(out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])] = np.nan
    return torch.from_numpy(out.astype(np.float32))


def augment_clip(frames: torch.Tensor, boxes: torch.Tensor | None, cfg: VideoAugConfig,
                 rng: np.random.Generator | None,
                 out: torch.Tensor | None = None,
                 native: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [T, H, W, 3] -> normalised float [C, T, S, S] (written into ``out`` when
    given), and ``boxes`` [T, 4] mapped into the crop (None stays None); ``rng=None`` means
    evaluation (centre crop, no flip, no jitter); ``native=False`` runs torch ops instead
    of the C passes."""
    h, w = frames.shape[1:3]
    train = rng is not None
    top, left, ch, cw = crop_params(h, w, cfg.scale, cfg.ratio, rng) if train else centre_params(h, w)
    flip = bool(train and rng.random() < cfg.flip)
    crop = crop_resize(frames, top, left, ch, cw, cfg.size, flip=flip, out=out, native=native)
    if train and cfg.jitter > 0 and rng.random() < cfg.jitter_prob:
        # the clip's mean colour is the grey level contrast blends towards
        m, b = jitter_affine(crop.mean, cfg.jitter, rng)
    else:
        m, b = np.eye(3), np.zeros(3)
    out = crop.planes(*normalised_affine(m, b, cfg.mean, cfg.std))
    return out, None if boxes is None else crop_boxes(boxes, h, w, top, left, ch, cw, flip)
