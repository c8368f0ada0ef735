"""The worker's per-clip video work: a random resized crop and flip in uint8, and the
draw of the colour jitter that ``DeviceAugment`` applies later.

Why uint8 here and colour on the device: the crop shrinks the clip, and uint8 keeps it
at a quarter of float32's bytes through the worker -> training-process -> device path;
colour jitter and normalisation are a per-pixel affine map, cheap as one batched op on
the device. Parameters are drawn from an explicit numpy Generator, one set per clip (all
frames alike), so a sample's augmentation is a function of (seed, epoch, rank, worker,
sample position) and a resumed run reproduces it. Boxes (normalised x0, y0, x1, y1 per
frame) follow the crop and flip.

The draws (``draw_clip``) come before any pixel: with PyAV the crop, resize and mirror are
then done in its own RGB conversion (``decode_crop.py``, ``loader.clip.crop_in_decoder``);
with the other backends, or that setting off, here by torch (``resize_crop``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from pipeline.config import ConfigError

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# colour jitter factors in this order; (1, 1, 1, 0) and any order is the identity
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
NO_JITTER = np.array([1.0, 1.0, 1.0, 0.0], np.float32)
IN_ORDER = np.arange(4, dtype=np.int8)


@dataclass
class VideoAugConfig:
    size: int = field(default=112, metadata={"help": "output crop size (square), pixels", "min": 1})
    scale: tuple[float, float] = field(default=(0.3, 1.0), metadata={"help": "random resized crop: area fraction range", "above": 0, "max": 1})
    ratio: tuple[float, float] = field(default=(0.75, 1.3333), metadata={"help": "random resized crop: aspect ratio range", "above": 0})
    short_side: tuple[float, float] = field(default=(0.0, 0.0), metadata={
        "help": "official GDT / SeLaVi crop instead of scale/ratio: the frame's short side scaled to a "
                "random whole S in this range (pixels), a size x size crop of that, i.e. a square of "
                "side size * short / S at a random place; (0, 0) = random resized crop", "min": 0})
    flip: float = field(default=0.5, metadata={"help": "probability of a horizontal flip", "min": 0, "max": 1})
    jitter: float = field(default=0.4, metadata={"help": "colour jitter strength (brightness, contrast, saturation; hue = jitter/4)", "min": 0})
    hue_ratio: float = field(default=0.25, metadata={"help": "hue jitter strength as a fraction of jitter (SimCLR's 1/4; 0: no hue jitter, GDT's fine-tuning)", "min": 0})
    jitter_prob: float = field(default=0.8, metadata={"help": "probability of applying colour jitter", "min": 0, "max": 1})
    mean: tuple[float, float, float] = field(default=KINETICS_MEAN, metadata={"help": "per-channel mean for normalisation"})
    std: tuple[float, float, float] = field(default=KINETICS_STD, metadata={"help": "per-channel std for normalisation", "above": 0})

    def check(self) -> None:
        lo, hi = self.short_side
        if hi > 0 and not 0 < lo <= hi:
            raise ConfigError(f"give 0 < low <= high, or (0, 0) for the random resized crop; got {list(self.short_side)}",
                              key="short_side")


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


def short_side_params(h: int, w: int, size: int, lo: float, hi: float,
                      rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, side, side) of the official crop: short side scaled to S = round(U(lo, hi))
    (their ``random_short_side_scale_jitter``), then a ``size`` crop (``random_crop``), seen
    in the frame's own pixels. The crop never exceeds the short side (S < size)."""
    short = min(h, w)
    target = int(round(rng.uniform(lo, hi)))
    side = min(short, max(1, int(round(size * short / max(target, 1)))))
    return int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side, side


def centre_params(h: int, w: int) -> tuple[int, int, int, int]:
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


def crop_boxes(boxes: np.ndarray, h: int, w: int, top: int, left: int, ch: int, cw: int,
               flip: bool) -> np.ndarray:
    """Map normalised boxes [T, 4] into the crop; boxes left with no area become NaN."""
    scale = np.array([w / cw, h / ch, w / cw, h / ch])
    shift = np.array([left / cw, top / ch, left / cw, top / ch])
    out = np.clip(boxes * scale - shift, 0.0, 1.0)
    if flip:
        out = out[:, [2, 1, 0, 3]]
        out[:, [0, 2]] = 1.0 - out[:, [0, 2]]
    out[(out[:, 2] <= out[:, 0]) | (out[:, 3] <= out[:, 1])] = np.nan
    return out.astype(np.float32)


def draw_jitter(cfg: VideoAugConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(factors in ``JITTER_OPS`` order [4], the order to apply them in [4]): with
    probability ``jitter_prob`` random factors (hue = strength x ``hue_ratio``, 1/4 as
    SimCLR) in a random order, else the identity."""
    if cfg.jitter <= 0 or rng.random() >= cfg.jitter_prob:
        return NO_JITTER, IN_ORDER
    j = cfg.jitter
    factors = np.array([rng.uniform(1 - j, 1 + j), rng.uniform(1 - j, 1 + j),
                        rng.uniform(1 - j, 1 + j), rng.uniform(-j * cfg.hue_ratio, j * cfg.hue_ratio)], np.float32)
    return factors, rng.permutation(4).astype(np.int8)


@dataclass(frozen=True)
class ClipDraw:
    """One clip view's augmentation, drawn once for all its frames: the crop (top, left,
    height, width in the frame's pixels), the mirror, the colour jitter (``draw_jitter``)."""
    top: int
    left: int
    height: int
    width: int
    flip: bool
    jitter: np.ndarray
    order: np.ndarray


def draw_clip(h: int, w: int, cfg: VideoAugConfig, rng: np.random.Generator | None) -> ClipDraw:
    """The draws of one view of an ``h`` x ``w`` video, in this order: crop, flip, jitter.
    ``rng=None`` means evaluation: centre crop, no flip, no jitter. Drawn before any
    pixel is touched, so the decoder may apply the crop itself (``decode_crop.py``)."""
    train = rng is not None
    if not train:
        top, left, ch, cw = centre_params(h, w)
    elif cfg.short_side[1] > 0:
        top, left, ch, cw = short_side_params(h, w, cfg.size, *cfg.short_side, rng)
    else:
        top, left, ch, cw = crop_params(h, w, cfg.scale, cfg.ratio, rng)
    flip = bool(train and rng.random() < cfg.flip)
    factors, order = draw_jitter(cfg, rng) if train else (NO_JITTER, IN_ORDER)
    return ClipDraw(top, left, ch, cw, flip, factors, order)


def resize_crop(frames: torch.Tensor, d: ClipDraw, out: torch.Tensor) -> None:
    """uint8 frames [T, H, W, 3] -> their crop resized to ``out`` (uint8 [T, S, S, 3]),
    mirrored when drawn: torchvision's antialiased bilinear on uint8 (its native kernel
    on CPU, which reads the decoders' interleaved RGB as channels-last images)."""
    x = TF.resized_crop(frames.permute(0, 3, 1, 2), d.top, d.left, d.height, d.width, list(out.shape[1:3]),
                        antialias=True)
    if d.flip:
        x = x.flip(-1)
    out.copy_(x.permute(0, 2, 3, 1))


def boxes_of(boxes: np.ndarray | None, h: int, w: int, d: ClipDraw) -> np.ndarray | None:
    return None if boxes is None else crop_boxes(boxes, h, w, d.top, d.left, d.height, d.width, d.flip)


def crop_clip(frames: torch.Tensor, boxes: np.ndarray | None, cfg: VideoAugConfig,
              rng: np.random.Generator | None, out: torch.Tensor) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``draw_clip`` + ``resize_crop`` on decoded frames; returns (boxes mapped into the
    crop or None, jitter factors, jitter order)."""
    h, w = frames.shape[1:3]
    d = draw_clip(h, w, cfg, rng)
    resize_crop(frames, d, out)
    return boxes_of(boxes, h, w, d), d.jitter, d.order
