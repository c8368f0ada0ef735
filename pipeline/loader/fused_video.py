"""The loader's per-pixel video work in C: crop, resize, mirror and colour in two passes.

Why: torchvision's uint8 resize is fast, but around it torch walked the clip five more
times (flip, planar copy, float copy, a 3x3 colour product, clamps); at 128p the whole
augmentation cost a fifth of decoding the clip. Here the first pass resamples the crop of
the decoded interleaved RGB frames straight into the batch's float planes, mirrored if
asked (the weights torchvision/PIL use for antialiased bilinear resizing; rows first, as
one contiguous vectorised sweep, then columns), and sums them for the mean colour that
colour jitter needs; the second applies jitter, normalisation and clamping in place.
Without a C compiler the same maths runs as torch ops (``native=False``): torchvision's
resize rounds to uint8 in between, so the two agree to within a grey level.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF


_SRC = r"""
#include <stdint.h>

/* Horizontal taps of one float interleaved RGB row -> planar rows o[0..2][ow]: for each
   tap k, o[x] += wt[k * ow + x] * row[xs3[x] + 3 k] (xs3 = 3 x first column), a gather
   loop the compiler vectorises. */
static void row_taps(const float *restrict row, int64_t ow, const int32_t *restrict xs3,
                     const float *restrict wt, int64_t K, float *restrict o0,
                     float *restrict o1, float *restrict o2) {
    for (int64_t x = 0; x < ow; x++) { o0[x] = 0; o1[x] = 0; o2[x] = 0; }
    for (int64_t k = 0; k < K; k++) {
        const float *restrict w = wt + k * ow;
        const float *restrict r = row + 3 * k;
        for (int64_t x = 0; x < ow; x++) {
            const int32_t i = xs3[x];
            o0[x] += w[x] * r[i]; o1[x] += w[x] * r[i + 1]; o2[x] += w[x] * r[i + 2];
        }
    }
}

/* Resample the crop (top, left; cw columns) of t interleaved RGB uint8 frames (frame
   stride fs, row stride rs, bytes) to planar floats dst [3, t, oh, ow] (0..255).
   Output row y mixes ky crop rows from ys[y] with weights wy[y * ky + k] (one contiguous,
   vectorised pass into the work row ``row`` [cw * 3]); output column x then mixes kx of
   its pixels from xs[x] with weights wx[x * kx + k]. sums[3]: per-channel sums of dst. */
void crop_resize(const uint8_t *restrict src, int64_t t, int64_t fs, int64_t rs, int64_t top,
                 int64_t left, int64_t cw, int64_t oh, int64_t ow, const int32_t *xs,
                 const float *wx, int64_t kx, const int32_t *ys, const float *wy, int64_t ky,
                 float *restrict row, float *restrict dst, double *sums) {
    const int64_t len = cw * 3, plane = t * oh * ow;
    double s[3] = {0, 0, 0};
    for (int64_t f = 0; f < t; f++) {
        const uint8_t *frame = src + f * fs + top * rs + left * 3;
        for (int64_t y = 0; y < oh; y++) {
            const float *w = wy + y * ky;
            const uint8_t *restrict in = frame + (int64_t)ys[y] * rs;
            for (int64_t i = 0; i < len; i++) row[i] = w[0] * in[i];
            for (int64_t k = 1; k < ky; k++) {
                const uint8_t *restrict r = in + k * rs;
                const float wk = w[k];
                for (int64_t i = 0; i < len; i++) row[i] += wk * r[i];
            }
            float *o0 = dst + (f * oh + y) * ow, *o1 = o0 + plane, *o2 = o1 + plane;
            row_taps(row, ow, xs, wx, kx, o0, o1, o2);
            for (int c = 0; c < 3; c++) {
                const float *restrict o = o0 + c * plane;
                float acc = 0;
                for (int64_t x = 0; x < ow; x++) acc += o[x];
                s[c] += acc;
            }
        }
    }
    sums[0] = s[0]; sums[1] = s[1]; sums[2] = s[2];
}

static inline float clampf(float v, float lo, float hi) {
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* In place over planes x [3, n]: each pixel becomes clamp(M rgb + b, lo, hi) per channel. */
void planes_affine(float *restrict x, int64_t n, const float *m, const float *b,
                   const float *lo, const float *hi) {
    const float m0 = m[0], m1 = m[1], m2 = m[2], m3 = m[3], m4 = m[4], m5 = m[5], m6 = m[6],
                m7 = m[7], m8 = m[8], b0 = b[0], b1 = b[1], b2 = b[2], l0 = lo[0], l1 = lo[1],
                l2 = lo[2], h0 = hi[0], h1 = hi[1], h2 = hi[2];
    float *restrict x0 = x, *restrict x1 = x + n, *restrict x2 = x + 2 * n;
    for (int64_t i = 0; i < n; i++) {
        const float v0 = x0[i], v1 = x1[i], v2 = x2[i];
        x0[i] = clampf(m0 * v0 + m1 * v1 + m2 * v2 + b0, l0, h0);
        x1[i] = clampf(m3 * v0 + m4 * v1 + m5 * v2 + b1, l1, h1);
        x2[i] = clampf(m6 * v0 + m7 * v1 + m8 * v2 + b2, l2, h2);
    }
}
"""
# no -ffast-math: the torch fallback must agree to float rounding
_CFLAGS = ("-O3", "-march=native", "-fPIC", "-c")
_P, _I64 = ctypes.c_void_p, ctypes.c_int64


def _lib() -> ctypes.CDLL | None:
    """None: C is no longer compiled at run time (issue 17), so the torch path runs.
    (The data-path rewrite, issue 15, removes this module.)"""
    return None


@lru_cache(maxsize=4096)
def resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(first source index [n_out], weights [n_out, k]) of antialiased bilinear resampling
    from ``n_in`` to ``n_out`` samples: a triangle filter widened by the downscale factor
    (PIL's and torchvision's ``antialias=True``), plain bilinear with half-pixel centres
    when upscaling. Every output reads k samples (unused ones weigh 0, and a window that
    would run past the end starts earlier), so the C loops have a fixed tap count.
    Cached: crops come in a bounded set of sizes."""
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
    shift = np.maximum(first + k - n_in, 0)  # move such windows left, their weights right
    cols = np.arange(k)[None, :] - shift[:, None]
    w = np.where(cols >= 0, np.take_along_axis(w, np.maximum(cols, 0), axis=1), 0.0)
    return _frozen((first - shift).astype(np.int32), w.astype(np.float32))


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cached arrays are shared by every caller: read-only, so none can change them."""
    for a in arrays:
        a.flags.writeable = False
    return arrays


@lru_cache(maxsize=4096)
def _column_taps(n_in: int, n_out: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """``resize_taps`` laid out for the C column loop: 3 x first column (interleaved RGB)
    and weights [k, n_out]; a mirrored clip computes its output columns in reverse order."""
    first, w = resize_taps(n_in, n_out)
    if flip:
        first, w = first[::-1], w[::-1]
    return _frozen(np.ascontiguousarray(3 * first), np.ascontiguousarray(w.T))


class NativeCrop:
    """A clip's crop resampled into its output planes (pass 1, which also gives the mean
    colour colour jitter needs); ``planes`` applies the colour transform in place (pass 2)."""

    def __init__(self, lib: ctypes.CDLL, frames: torch.Tensor, top: int, left: int, ch: int,
                 cw: int, size: int, flip: bool, out: torch.Tensor | None):
        t = frames.shape[0]
        self.lib, self.out = lib, torch.empty(3, t, size, size) if out is None else out
        if not self.out.is_contiguous() or self.out.dtype != torch.float32:
            raise ValueError("crop_resize: out must be a contiguous float32 tensor")
        xs, wx = _column_taps(cw, size, flip)
        ys, wy = resize_taps(ch, size)
        row = np.empty(cw * 3, np.float32)
        sums = np.zeros(3, np.float64)
        lib.crop_resize(frames.data_ptr(), t, frames.stride(0), frames.stride(1), top, left, cw,
                        size, size, xs.ctypes.data, wx.ctypes.data, wx.shape[0], ys.ctypes.data,
                        wy.ctypes.data, wy.shape[1], row.ctypes.data, self.out.data_ptr(),
                        sums.ctypes.data)
        self.mean = sums / (t * size * size) / 255.0

    def planes(self, m: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
        """The output [3, T, S, S], each pixel now clamp(m @ rgb + b, lo, hi) (rgb in 0..255)."""
        args = [np.ascontiguousarray(a, np.float32) for a in (m, b, lo, hi)]
        self.lib.planes_affine(self.out.data_ptr(), self.out[0].numel(), *(a.ctypes.data for a in args))
        return self.out


class TorchCrop:
    """The same with torch ops: torchvision's uint8 resize, then ``affine_planes``."""

    def __init__(self, frames: torch.Tensor, top: int, left: int, ch: int, cw: int, size: int,
                 flip: bool, out: torch.Tensor | None):
        self.x = TF.resized_crop(frames.permute(0, 3, 1, 2), top, left, ch, cw, [size, size],
                                 antialias=True)
        self.flip, self.out = flip, out
        self.mean = self.x.double().mean(dim=(0, 2, 3)).numpy() / 255.0

    def planes(self, m: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
        return affine_planes(self.x, self.flip, m, b, lo, hi, out=self.out)


def crop_resize(frames: torch.Tensor, top: int, left: int, ch: int, cw: int, size: int,
                flip: bool = False, out: torch.Tensor | None = None,
                native: bool = True) -> NativeCrop | TorchCrop:
    """The crop of uint8 frames [T, H, W, 3] on its way to float planes [3, T, S, S] (into
    ``out`` when given; mirrored when ``flip``): its ``mean`` colour in [0, 1], then
    ``planes(m, b, lo, hi)`` for the colour transform. Native (C) when a compiler is there
    and the frames are interleaved RGB rows, torch ops otherwise."""
    lib = _lib() if native else None
    if lib is None or frames.dtype != torch.uint8 or frames.stride(-1) != 1 \
            or frames.stride(-2) != 3:
        return TorchCrop(frames, top, left, ch, cw, size, flip, out)
    return NativeCrop(lib, frames, top, left, ch, cw, size, flip, out)


def affine_planes(x: torch.Tensor, flip: bool, m: np.ndarray, b: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, out: torch.Tensor | None = None) -> torch.Tensor:
    """[T, 3, H, W] (uint8 or float, 0..255) -> float [3, T, H, W] with torch ops: per
    pixel clamp(m @ rgb + b, lo, hi) per channel, mirrored left-right when ``flip``."""
    t, _, h, w = x.shape
    out = torch.empty(3, t, h, w) if out is None else out
    planes = x.permute(1, 0, 2, 3).float()
    planes = planes.flip(-1) if flip else planes
    mixed = torch.addmm(torch.from_numpy(np.asarray(b, np.float32))[:, None],
                        torch.from_numpy(np.asarray(m, np.float32)), planes.reshape(3, -1))
    lo_t = torch.from_numpy(np.asarray(lo, np.float32))[:, None]
    hi_t = torch.from_numpy(np.asarray(hi, np.float32))[:, None]
    torch.minimum(torch.maximum(mixed, lo_t), hi_t, out=out.view(3, -1))
    return out
