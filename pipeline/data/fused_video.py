"""The loader's per-pixel video work in C: crop + resize, then colour, in two passes.

Why: torchvision's uint8 resize is fast, but around it torch walked the clip five more
times (flip, planar copy, float copy, a 3x3 colour product, clamps); at 128p the whole
augmentation cost a fifth of decoding the clip. Here one pass resamples the crop of the
decoded interleaved RGB frames into float pixels (the weights torchvision/PIL use for
antialiased bilinear resizing) and sums them for the clip's mean colour; a second pass
writes flipped, jittered, normalised and clamped float planes straight into the batch.
Without a C compiler the same maths runs as torch ops (``native=False``): torchvision's
resize rounds to uint8 in between, so the two agree to within one grey level.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from pipeline.native import load_library

_SRC = r"""
#include <stdint.h>
#include <string.h>

/* Resample the crop (top, left, ch rows) of t interleaved RGB uint8 frames (frame stride
   fs, row stride rs, bytes) to float [t, oh, ow, 3]. Output column x reads xn[x] source
   columns from xs[x] (relative to left) with weights wx[x * kx + k]; output row y reads
   yn[y] crop rows from ys[y] with weights wy[y * ky + k]. tmp: float [ch, ow, 3]. The
   per-channel sums of the output go to sums[3]. */
void crop_resize(const uint8_t *restrict src, int64_t t, int64_t fs, int64_t rs, int64_t top,
                 int64_t left, int64_t ch, int64_t oh, int64_t ow,
                 const int32_t *xs, const int32_t *xn, const float *wx, int64_t kx,
                 const int32_t *ys, const int32_t *yn, const float *wy, int64_t ky,
                 float *restrict tmp, float *restrict out, double *sums) {
    const int64_t row_len = ow * 3;
    double s0 = 0, s1 = 0, s2 = 0;
    for (int64_t f = 0; f < t; f++) {
        for (int64_t r = 0; r < ch; r++) {
            const uint8_t *restrict row = src + f * fs + (top + r) * rs + left * 3;
            float *restrict o = tmp + r * row_len;
            for (int64_t x = 0; x < ow; x++) {
                const uint8_t *restrict p = row + (int64_t)xs[x] * 3;
                const float *restrict w = wx + x * kx;
                float a0 = 0, a1 = 0, a2 = 0;
                for (int32_t k = 0; k < xn[x]; k++, p += 3) {
                    a0 += w[k] * p[0]; a1 += w[k] * p[1]; a2 += w[k] * p[2];
                }
                o[3 * x] = a0; o[3 * x + 1] = a1; o[3 * x + 2] = a2;
            }
        }
        for (int64_t y = 0; y < oh; y++) {
            float *restrict o = out + (f * oh + y) * row_len;
            memset(o, 0, row_len * sizeof(float));
            for (int32_t k = 0; k < yn[y]; k++) {
                const float w = wy[y * ky + k];
                const float *restrict in = tmp + (ys[y] + k) * row_len;
                for (int64_t i = 0; i < row_len; i++) o[i] += w * in[i];
            }
            float r0 = 0, r1 = 0, r2 = 0;
            for (int64_t x = 0; x < ow; x++) {
                r0 += o[3 * x]; r1 += o[3 * x + 1]; r2 += o[3 * x + 2];
            }
            s0 += r0; s1 += r1; s2 += r2;
        }
    }
    sums[0] = s0; sums[1] = s1; sums[2] = s2;
}

static inline float clampf(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* x: float [rows, width, 3] (interleaved RGB, 0..255); dst: float [3, rows * width] planes
   of clamp(M rgb + b, lo, hi), each row mirrored when flip is set. */
void planes_affine(const float *restrict x, int64_t rows, int64_t width, int flip,
                   float *restrict dst, const float *m, const float *b, const float *lo,
                   const float *hi) {
    const int64_t n = rows * width;
    const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6],
                m7 = m[7], m8 = m[8], b0 = b[0], b1 = b[1], b2 = b[2], l0 = lo[0], l1 = lo[1],
                l2 = lo[2], h0 = hi[0], h1 = hi[1], h2 = hi[2];
    for (int64_t y = 0; y < rows; y++) {
        const float *restrict p = x + y * width * 3;
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
        "crop_resize": [_P, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _I64,
                        _P, _P, _P, _I64, _P, _P, _P, _I64, _P, _P, _P],
        "planes_affine": [_P, _I64, _I64, ctypes.c_int, _P, _P, _P, _P, _P]})


@lru_cache(maxsize=4096)
def resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first source index, tap count, weights [n_out, k]) of antialiased bilinear
    resampling from ``n_in`` to ``n_out`` samples: a triangle filter widened by the
    downscale factor (PIL's and torchvision's ``antialias=True``), plain bilinear with
    half-pixel centres when upscaling. Cached: crops come in a bounded set of sizes."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # bilinear support 1, widened when shrinking
    centre = (np.arange(n_out) + 0.5) * scale
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    last = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    k = int((last - first).max())
    j = first[:, None] + np.arange(k)[None, :]
    w = np.maximum(1.0 - np.abs((j - centre[:, None] + 0.5) / support), 0.0)
    w[j >= last[:, None]] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    return first.astype(np.int32), (last - first).astype(np.int32), w.astype(np.float32)


def _interleaved(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """[T, 3, H, W] whose memory is [T, H, W, 3] (the decoders' layout) as that
    contiguous buffer, or None."""
    if x.device.type != "cpu" or x.dtype != dtype:
        return None
    hwc = x.permute(0, 2, 3, 1)
    return hwc if hwc.is_contiguous() else None


def crop_resize(frames: torch.Tensor, top: int, left: int, ch: int, cw: int, size: int,
                native: bool = True) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 frames [T, H, W, 3] -> (the crop resized to ``size`` x ``size`` as [T, 3, S, S]
    with 0..255 values, its mean colour in [0, 1]). Native: float, laid out [T, S, S, 3];
    fallback: torchvision's uint8 resize."""
    lib = _lib() if native else None
    if lib is None or frames.dtype != torch.uint8 or frames.stride(-1) != 1 or frames.stride(-2) != 3:
        x = TF.resized_crop(frames.permute(0, 3, 1, 2), top, left, ch, cw, [size, size], antialias=True)
        return x, x.double().mean(dim=(0, 2, 3)).numpy() / 255.0
    t = frames.shape[0]
    xs, xn, wx = resize_taps(cw, size)
    ys, yn, wy = resize_taps(ch, size)
    out = torch.empty(t, size, size, 3)
    tmp = np.empty((ch, size, 3), np.float32)
    sums = np.zeros(3, np.float64)
    lib.crop_resize(frames.data_ptr(), t, frames.stride(0), frames.stride(1), top, left, ch,
                    size, size, xs.ctypes.data, xn.ctypes.data, wx.ctypes.data, wx.shape[1],
                    ys.ctypes.data, yn.ctypes.data, wy.ctypes.data, wy.shape[1],
                    tmp.ctypes.data, out.data_ptr(), sums.ctypes.data)
    return out.permute(0, 3, 1, 2), sums / (t * size * size) / 255.0


def affine_planes(x: torch.Tensor, flip: bool, m: np.ndarray, b: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, out: torch.Tensor | None = None,
                  native: bool = True) -> torch.Tensor:
    """[T, 3, H, W] (uint8 or float, 0..255) -> float [3, T, H, W]: per pixel
    clamp(m @ rgb + b, lo, hi) per channel, mirrored left-right when ``flip``."""
    t, _, h, w = x.shape
    out = torch.empty(3, t, h, w) if out is None else out
    lib, hwc = (_lib(), _interleaved(x, torch.float32)) if native else (None, None)
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

