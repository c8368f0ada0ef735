"""Colour jitter (brightness, contrast, saturation, hue in a per-clip order) as ONE affine
colour transform per clip, composed for a whole batch at once on the device.

Each of the four operations is affine in RGB (hue as a rotation of the chroma plane in
YIQ space), so their composition is a 3x3 matrix and an offset; normalisation is affine
too and folds in, so a clip's uint8 pixels become normalised jittered values in one
batched matrix product. torchvision applies the operations one by one, with an
RGB->HSV->RGB round trip for hue, which cost more than decoding the clip. Unlike
torchvision, values are clamped once at the end rather than after every operation.
The tiny 3x3 algebra runs in float64, as exact as the numpy it replaced.
"""
from __future__ import annotations

import math

import numpy as np
import torch

LUMA = np.array([0.299, 0.587, 0.114])
RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
YIQ2RGB = np.linalg.inv(RGB2YIQ)
# a hue turn by angle a is KEEP_Y + cos(a) TURN_COS + sin(a) TURN_SIN (a rotation of the
# I/Q plane, written in RGB); saturation f is f I + (1 - f) GREY
KEEP_Y = YIQ2RGB @ np.diag([1.0, 0.0, 0.0]) @ RGB2YIQ
TURN_COS = YIQ2RGB @ np.diag([0.0, 1.0, 1.0]) @ RGB2YIQ
TURN_SIN = YIQ2RGB @ np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]) @ RGB2YIQ
GREY = np.outer(np.ones(3), LUMA)
for _const in (LUMA, RGB2YIQ, YIQ2RGB, KEEP_Y, TURN_COS, TURN_SIN, GREY):
    _const.flags.writeable = False  # shared constants: an in-place edit would be a bug
del _const
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # columns of the factors (JITTER_OPS)


class ColourAffine(torch.nn.Module):
    """``forward(factors [N, 4], order [N, 4], mean_rgb [N, 3]) -> (M [N, 3, 3], b [N, 3])``:
    jittered = M @ rgb + b for rgb in [0, 1], the ops applied in ``order`` (indices into
    the factor columns). Contrast blends towards the grey of the current mean colour, so
    ``mean_rgb`` is each clip's mean colour."""

    def __init__(self):
        super().__init__()
        for name, value in (("luma", LUMA), ("grey", GREY), ("keep_y", KEEP_Y),
                            ("turn_cos", TURN_COS), ("turn_sin", TURN_SIN)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float64), persistent=False)

    def forward(self, factors: torch.Tensor, order: torch.Tensor,
                mean_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = factors.shape[0]
        f_all, mean_rgb = factors.double(), mean_rgb.double()
        m = torch.eye(3, dtype=torch.float64, device=factors.device).expand(n, 3, 3)
        b = torch.zeros(n, 3, dtype=torch.float64, device=factors.device)
        eye = m
        for k in range(order.shape[1]):
            op = order[:, k].long()
            f = f_all.gather(1, op[:, None])                          # [N, 1]
            mu = torch.einsum("nij,nj->ni", m, mean_rgb) + b
            # brightness and contrast scale (M, b); contrast also pulls b to the grey of mu
            scaled_b = f * b + (op == CONTRAST)[:, None] * (1 - f) * (mu @ self.luma)[:, None]
            # saturation and hue mix the channels: a 3x3 step applied to (M, b)
            a = 2 * math.pi * f[:, :, None]
            turn = self.keep_y + torch.cos(a) * self.turn_cos + torch.sin(a) * self.turn_sin
            sat = f[:, :, None] * eye + (1 - f[:, :, None]) * self.grey
            step = torch.where((op == SATURATION)[:, None, None], sat, turn)
            mixing = (op >= SATURATION)[:, None]
            m = torch.where(mixing[:, :, None], step @ m, f[:, :, None] * m)
            b = torch.where(mixing, torch.einsum("nij,nj->ni", step, b), scaled_b)
        return m, b


def normalised_affine(m: torch.Tensor, b: torch.Tensor, mean, std) -> tuple[torch.Tensor, ...]:
    """(M', b', lo, hi) taking 0..255 pixels straight to normalised jittered values:
    normalisation is affine too, so it folds into (M, b) [N, 3, 3], [N, 3], and the [0, 1]
    clamp becomes a per-channel clamp [3] of the normalised value."""
    mean = torch.as_tensor(mean, dtype=torch.float64, device=m.device)
    std = torch.as_tensor(std, dtype=torch.float64, device=m.device)
    return m / (255.0 * std[:, None]), (b - mean) / std, -mean / std, (1.0 - mean) / std
