"""Colour jitter (brightness, contrast, saturation, hue in random order) as ONE affine
colour transform per clip.

Each of the four operations is affine in RGB (hue as a rotation of the chroma plane in
YIQ space), so their composition is a 3x3 matrix and an offset, applied to the clip in a
single pass together with the uint8 scaling. torchvision applies them one by one, with
an RGB->HSV->RGB round trip for hue, which cost more than decoding the clip. Unlike
torchvision, values are clamped once at the end rather than after every operation.
"""
from __future__ import annotations

import math

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ2RGB = np.linalg.inv(RGB2YIQ)
# a hue turn by angle a is KEEP_Y + cos(a) TURN_COS + sin(a) TURN_SIN (a rotation of the
# I/Q plane, written in RGB); saturation f is f I + (1 - f) GREY
KEEP_Y = YIQ2RGB @ np.diag([1.0, 0.0, 0.0]) @ RGB2YIQ
TURN_COS = YIQ2RGB @ np.diag([0.0, 1.0, 1.0]) @ RGB2YIQ
TURN_SIN = YIQ2RGB @ np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]) @ RGB2YIQ
GREY = np.outer(np.ones(3), LUMA)
EYE = np.eye(3)
for _const in (LUMA, RGB2YIQ, YIQ2RGB, KEEP_Y, TURN_COS, TURN_SIN, GREY, EYE):
    _const.flags.writeable = False  # shared constants: an in-place edit would be a bug
del _const


def hue_matrix(shift: float) -> np.ndarray:
    a = 2 * math.pi * shift
    return KEEP_Y + math.cos(a) * TURN_COS + math.sin(a) * TURN_SIN


def compose_affine(ops: list[tuple[str, float]], mean_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, b) of applying ``ops`` [(name, factor), ...] in order: jittered = M @ rgb + b
    for rgb in [0, 1]. Contrast blends towards the grey of the current mean colour, so
    ``mean_rgb`` is the clip's mean colour."""
    m, b = EYE, np.zeros(3)
    for op, f in ops:
        mu = m @ mean_rgb + b
        if op == "brightness":
            m, b = f * m, f * b
        elif op == "contrast":
            m, b = f * m, f * b + (1 - f) * float(LUMA @ mu)
        elif op in ("saturation", "hue"):
            step = f * EYE + (1 - f) * GREY if op == "saturation" else hue_matrix(f)
            m, b = step @ m, step @ b
        else:
            raise ValueError(f"unknown colour op {op!r}")
    return m, b


def jitter_affine(mean_rgb: np.ndarray, strength: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random factors (hue = strength / 4, as SimCLR) in a random order, composed."""
    j = strength
    factors = [("brightness", rng.uniform(1 - j, 1 + j)), ("contrast", rng.uniform(1 - j, 1 + j)),
               ("saturation", rng.uniform(1 - j, 1 + j)), ("hue", rng.uniform(-j / 4, j / 4))]
    return compose_affine([factors[k] for k in rng.permutation(4)], mean_rgb)


def normalised_affine(m: np.ndarray, b: np.ndarray, mean, std) -> tuple[np.ndarray, ...]:
    """(M', b', lo, hi) taking 0..255 pixels straight to normalised jittered values:
    normalisation is affine too, so it folds into (M, b), and the [0, 1] clamp becomes a
    per-channel clamp of the normalised value."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    mm = np.asarray(m, np.float64) / (255.0 * std[:, None])
    bb = (np.asarray(b, np.float64) - mean) / std
    return mm, bb, -mean / std, (1.0 - mean) / std

