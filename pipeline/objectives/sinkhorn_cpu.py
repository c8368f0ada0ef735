"""Fused CPU row kernels for the Sinkhorn pass, compiled on first use (optional).

Why: on CPU a Sinkhorn iteration is memory-bound, and torch needs two mat-vecs (plus,
when the kernel is not cached, ~8 elementwise passes and an exp) per chunk. One C loop
per row reads each kernel row once while it sits in L1: build it from the float16/32
log-probs (exp included), dot it with rho, and add row/s into the column sums. This is
~2x faster with a cached kernel and ~4x when recomputing it (the N=1.28M x K=3000 case).

The library is built by ``pipeline.native`` (cc -O3 -march=native -ffast-math, so expf
vectorises through glibc's libmvec). If that fails, ``load()`` returns None and the
solver uses its pure-torch path, which is also used on GPU. Rows are split into ranges processed by threads; ctypes releases the GIL.
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from pipeline.native import load_library

_SRC = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#define FLOOR (-87.0f)
#define FLUSH 64 /* rows summed in float32 before adding to the float64 columns */

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4))); /* unaligned loads */
#define LD(p) (*(const v8u *)(p))

/* s = e . rho (4 independent vector sums hide FMA latency); colf += e / s. */
static float finish_row(const float *e, const float *rho, int64_t k, float *colf) {
    v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
        a0 += LD(e + j) * LD(rho + j);
        a1 += LD(e + j + 8) * LD(rho + j + 8);
        a2 += LD(e + j + 16) * LD(rho + j + 16);
        a3 += LD(e + j + 24) * LD(rho + j + 24);
    }
    const v8 a = (a0 + a1) + (a2 + a3);
    float s = 0.f;
    for (int t = 0; t < 8; t++) s += a[t];
    for (; j < k; j++) s += e[j] * rho[j];
    const float w = 1.0f / s;
    const v8 wv = (v8){0} + w;
    for (j = 0; j + 8 <= k; j += 8) *(v8u *)(colf + j) += wv * LD(e + j);
    for (; j < k; j++) colf[j] += w * e[j];
    return s;
}

static void flush(float *colf, double *col, int64_t k) {
    for (int64_t j = 0; j < k; j++) { col[j] += colf[j]; colf[j] = 0.f; }
}

/* Rows of a cached kernel. */
void cached_pass(const float *E, int64_t n, int64_t k, const float *rho,
                 float *s_out, double *col) {
    float *colf = calloc(k, sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        s_out[i] = finish_row(E + i * k, rho, k, colf);
        if ((i + 1) % FLUSH == 0) flush(colf, col, k);
    }
    flush(colf, col, k);
    free(colf);
}

/* Kernel rows exp(max(lam*(x - lmax) + gc - rowmax, FLOOR)) from log-probs x (float32 if
   half == 0, else float16; row i starts at element i * ldx); stored to E_out when given. */
void build_pass(const void *x, int half, int64_t ldx, int64_t n, int64_t k, const float *lmax, float lam,
                const float *gc, const float *rho, float *E_out, float *rmax_out,
                float *s_out, double *col) {
    float *colf = calloc(k, sizeof(float));
    float *buf = E_out ? NULL : malloc(k * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float *e = E_out ? E_out + i * k : buf;
        const float lm = lmax[i];
        if (half) {
            const _Float16 *xr = (const _Float16 *)x + i * ldx;
            int64_t j = 0;
#ifdef __F16C__ /* 8 halves per instruction; gcc 12 converts them one by one */
            for (; j + 8 <= k; j += 8) {
                const v8 v = (v8)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(xr + j)));
                *(v8u *)(e + j) = lam * (v - lm) + LD(gc + j);
            }
#endif
            for (; j < k; j++) e[j] = lam * ((float)xr[j] - lm) + gc[j];
        } else {
            const float *xr = (const float *)x + i * ldx;
            for (int64_t j = 0; j < k; j++) e[j] = lam * (xr[j] - lm) + gc[j];
        }
        float m = e[0];
        for (int64_t j = 1; j < k; j++) m = e[j] > m ? e[j] : m;
        for (int64_t j = 0; j < k; j++) e[j] = expf(fmaxf(e[j] - m, FLOOR));
        rmax_out[i] = m;
        s_out[i] = finish_row(e, rho, k, colf);
        if ((i + 1) % FLUSH == 0) flush(colf, col, k);
    }
    flush(colf, col, k);
    free(colf);
    free(buf);
}
"""
_P = ctypes.c_void_p
_lock = threading.Lock()


def load() -> ctypes.CDLL | None:
    """The compiled library, or None (then callers use the torch path)."""
    i64, f32 = ctypes.c_int64, ctypes.c_float
    return load_library("sinkhorn_cpu", _SRC, signatures={
        "cached_pass": [_P, i64, i64, _P, _P, _P],
        "build_pass": [_P, ctypes.c_int, i64, i64, i64, _P, f32, _P, _P, _P, _P, _P, _P]})


def supports(x: torch.Tensor) -> bool:
    """CPU float16/float32 with contiguous rows (any row stride, e.g. logp[:, head])."""
    return (x.device.type == "cpu" and x.dtype in (torch.float16, torch.float32) and x.dim() == 2
            and (x.stride(1) == 1 or x.shape[1] == 1) and x.stride(0) >= x.shape[1]
            and load() is not None)


def _ranges(n: int, parts: int):
    step = -(-n // parts)
    return [(s, min(s + step, n)) for s in range(0, n, step)]


_pools: dict[int, ThreadPoolExecutor] = {}


def _run(n: int, k: int, threads: int, work) -> torch.Tensor:
    """Run work(lo, hi, col) over row ranges: 4 per thread (balances a core that is busy
    with other work), at least 256K elements each (thread hand-off costs ~50 us)."""
    parts = max(1, min(4 * threads, (n * k) >> 18)) if threads > 1 else 1
    ranges = _ranges(n, parts)
    cols = [torch.zeros(k, dtype=torch.float64) for _ in ranges]
    if len(ranges) == 1:
        work(*ranges[0], cols[0])
    else:
        with _lock:
            pool = _pools.setdefault(threads, ThreadPoolExecutor(threads, "sinkhorn"))
        list(pool.map(lambda rc: work(*rc[0], rc[1]), zip(ranges, cols)))
    return torch.stack(cols).sum(0)


def cached_pass(kern, rho, s_out, threads) -> torch.Tensor:
    """s_out[n] = kern[n] . rho; returns sum_n kern[n] / s_out[n] (float64)."""
    n, k = kern.shape
    lib, ptr = load(), kern.data_ptr()

    def work(lo, hi, col):
        lib.cached_pass(ptr + lo * k * 4, hi - lo, k, rho.data_ptr(), s_out.data_ptr() + lo * 4,
                        col.data_ptr())

    return _run(n, k, threads, work)


def build_pass(x, lmax, lam, gc, rho, kern_out, rmax_out, s_out, threads) -> torch.Tensor:
    """As cached_pass, on the kernel rebuilt from log-probs x (stored to kern_out if given)."""
    n, k = x.shape
    lib, size, ld = load(), x.element_size(), x.stride(0)

    def work(lo, hi, col):
        out = kern_out.data_ptr() + lo * k * 4 if kern_out is not None else None
        lib.build_pass(x.data_ptr() + lo * ld * size, int(size == 2), ld, hi - lo, k,
                       lmax.data_ptr() + lo * 4, lam, gc.data_ptr(), rho.data_ptr(), out,
                       rmax_out.data_ptr() + lo * 4, s_out.data_ptr() + lo * 4, col.data_ptr())

    return _run(n, k, threads, work)
