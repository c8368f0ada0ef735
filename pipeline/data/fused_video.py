"""The loader's per-pixel colour work in one C pass (torch fallback, same maths).

Why: torchvision's uint8 resize is fast, but after it torch walks the clip five more
times (flip, planar copy, float copy, a 3x3 colour product, clamps); at 128p that cost
a quarter of decoding the clip. Here one pass reads the resized interleaved RGB clip and
writes flipped, jittered, normalised and clamped float planes straight into the batch.
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

from pipeline.native import load_library

_SRC = r"""
#include <stdint.h>

/* Per-channel sums of interleaved RGB uint8 pixels. */
void rgb_sums(const uint8_t *x, int64_t n, double *out) {
    int64_t s0 = 0, s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        s0 += x[3 * i]; s1 += x[3 * i + 1]; s2 += x[3 * i + 2];
    }
    out[0] = (double)s0; out[1] = (double)s1; out[2] = (double)s2;
}

static inline float clampf(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* x: uint8 [rows, width, 3] (interleaved RGB); dst: float [3, rows * width] planes of
   clamp(M rgb + b, lo, hi), each row mirrored when flip is set. */
void planes_affine(const uint8_t *restrict x, int64_t rows, int64_t width, int flip,
                   float *restrict dst, const float *m, const float *b, const float *lo,
                   const float *hi) {
    const int64_t n = rows * width;
    const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6],
                m7 = m[7], m8 = m[8], b0 = b[0], b1 = b[1], b2 = b[2], l0 = lo[0], l1 = lo[1],
                l2 = lo[2], h0 = hi[0], h1 = hi[1], h2 = hi[2];
    for (int64_t y = 0; y < rows; y++) {
        const uint8_t *restrict p = x + y * width * 3;
        float *restrict o0 = dst + y * width, *restrict o1 = o0 + n, *restrict o2 = o1 + n;
        if (flip) p += (width - 1) * 3;
        const int64_t step = flip ? -3 : 3;
        for (int64_t i = 0; i < width; i++, p += step) {
            const float v0 = p[0], v1 = p[1], v2 = p[2];
            o0[i] = clampf(m0 * v0 + m1 * v1 + m2 * v2 + b0, l0, h0);
            o1[i] = clampf(m3 * v0 + m4 * v1 + m5 * v2 + b1, l1, h1);
            o2[i] = clampf(m6 * v0 + m7 * v1 + m8 * v2 + b2, l2, h2);
        }
    }
}
"""
# no -ffast-math: the torch fallback must agree to float rounding
_CFLAGS = ("-O3", "-march=native", "-fPIC", "-c")
_P, _I64 = ctypes.c_void_p, ctypes.c_int64


def _lib() -> ctypes.CDLL | None:
    return load_library("fused_video", _SRC, _CFLAGS, signatures={
        "rgb_sums": [_P, _I64, _P],
        "planes_affine": [_P, _I64, _I64, ctypes.c_int, _P, _P, _P, _P, _P]})


def _interleaved(x: torch.Tensor) -> torch.Tensor | None:
    """uint8 [T, 3, H, W] whose memory is [T, H, W, 3] (decord's layout, kept by the
    resize) as that contiguous buffer, or None."""
    if x.device.type != "cpu" or x.dtype != torch.uint8:
        return None
    hwc = x.permute(0, 2, 3, 1)
    return hwc if hwc.is_contiguous() else None


def mean_rgb(x: torch.Tensor, native: bool = True) -> np.ndarray:
    """Mean colour in [0, 1] of a uint8 clip [T, 3, H, W]."""
    lib, hwc = (_lib(), _interleaved(x)) if native else (None, None)
    if lib is not None and hwc is not None:
        sums = np.zeros(3, np.float64)
        lib.rgb_sums(hwc.data_ptr(), hwc.numel() // 3, sums.ctypes.data)
        return sums / (hwc.numel() // 3) / 255.0
    return x.double().mean(dim=(0, 2, 3)).numpy() / 255.0


def affine_planes(x: torch.Tensor, flip: bool, m: np.ndarray, b: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, out: torch.Tensor | None = None,
                  native: bool = True) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> float [3, T, H, W]: per pixel clamp(m @ rgb + b, lo, hi) per
    channel (``m``, ``b`` act on 0..255 values), mirrored left-right when ``flip``."""
    t, _, h, w = x.shape
    out = torch.empty(3, t, h, w) if out is None else out
    lib, hwc = (_lib(), _interleaved(x)) if native else (None, None)
    if lib is not None and hwc is not None and out.is_contiguous() and out.dtype == torch.float32:
        args = [np.ascontiguousarray(a, np.float32) for a in (m, b, lo, hi)]
        lib.planes_affine(hwc.data_ptr(), t * h, w, int(flip), out.data_ptr(),
                          *(a.ctypes.data for a in args))
        return out
    planes = x.permute(1, 0, 2, 3).float()
    planes = planes.flip(-1) if flip else planes
    mixed = torch.addmm(torch.from_numpy(np.asarray(b, np.float32))[:, None],
                        torch.from_numpy(np.asarray(m, np.float32)), planes.reshape(3, -1))
    lo_t = torch.from_numpy(np.asarray(lo, np.float32))[:, None]
    hi_t = torch.from_numpy(np.asarray(hi, np.float32))[:, None]
    torch.minimum(torch.maximum(mixed, lo_t), hi_t, out=out.view(3, -1))
    return out
