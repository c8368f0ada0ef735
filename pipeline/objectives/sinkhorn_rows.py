"""The Sinkhorn solver's CPU row passes: numba kernels over fixed row blocks, on threads.

``sinkhorn_kernels`` holds the compiled loops; this module hands them torch tensors as
numpy views (no copies), splits the fixed row blocks into ranges for a thread pool (the
kernels release the GIL) and adds the blocks' column sums in block order, so the result
is the same for any thread count. numba is imported and the kernels compiled on first
use, so importing the solver costs nothing where the CPU path never runs.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import torch

log = logging.getLogger(__name__)
_MIN_RANGE_ELEMENTS = 1 << 18  # a thread hand-off costs ~50 us: give each at least this much


def supports(x: torch.Tensor) -> bool:
    """CPU float16/float32 (N, K) with contiguous rows (any row stride, e.g. logp[:, head])."""
    return (x.device.type == "cpu" and x.dtype in (torch.float16, torch.float32) and x.dim() == 2
            and (x.stride(1) == 1 or x.shape[1] == 1) and x.stride(0) >= x.shape[1])


@lru_cache(maxsize=None)
def kernels():
    """The compiled kernel module; compiled once per process, timed and logged."""
    import numba

    from pipeline.objectives import sinkhorn_kernels as kern

    t0, k = time.perf_counter(), 3
    f32 = np.zeros(k, np.float32)
    parts = np.zeros((1, k))
    kern.build_blocks(np.zeros(k, np.uint16), f32, True, k, np.zeros(1, np.float32), np.float32(1),
                      f32, f32 + 1, np.zeros((1, k), np.float32), True, np.zeros(1, np.float32),
                      np.zeros(1, np.float32), parts, 0, 1)
    kern.cached_blocks(np.ones((1, k), np.float32), f32 + 1, np.zeros(1, np.float32), parts, 0, 1)
    kern.sum_blocks(parts, np.zeros(k))
    kern.max_blocks(np.zeros(k, np.uint16), f32, True, k, k, np.zeros(1, np.float32), np.zeros(1, np.int64), 0, 1)
    kern.label_blocks(np.zeros(k, np.uint16), f32, True, k, 1.0, np.zeros(k), np.zeros(1, np.int64), 0, 1)
    log.info("sinkhorn backend: numba %s row kernels (no fast-math, fixed %d-row blocks), "
             "compiled in %.1f s", numba.__version__, kern.BLOCK_ROWS, time.perf_counter() - t0)
    return kern


def _flat(x: torch.Tensor) -> np.ndarray:
    """Rows of x (row stride ld, unit column stride) as one flat numpy view, no copy."""
    n, k = x.shape
    length = (n - 1) * x.stride(0) + k if n else 0
    flat = torch.as_strided(x, (length,), (1,), x.storage_offset())
    return flat.numpy().view(np.uint16) if x.dtype == torch.float16 else flat.numpy()


class RowPasses:
    """One solve's CPU passes over ``n`` rows of ``k`` columns on ``threads`` threads."""

    def __init__(self, n: int, k: int, threads: int):
        self.kern = kernels()
        self.n, self.k = n, k
        blocks = -(-n // self.kern.BLOCK_ROWS)
        self.parts = np.empty((blocks, k), np.float64)
        # 4 ranges per thread (balances a core busy with other work), each big enough
        per_block = self.kern.BLOCK_ROWS * k
        n_ranges = max(1, min(4 * threads, blocks, blocks * per_block // _MIN_RANGE_ELEMENTS)) if threads > 1 else 1
        step = -(-blocks // n_ranges)
        self.ranges = [(b, min(b + step, blocks)) for b in range(0, blocks, step)]
        self.pool = ThreadPoolExecutor(threads, "sinkhorn") if len(self.ranges) > 1 else None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def _blocks(self, work) -> None:
        """work(b0, b1) over the row-block ranges, on the threads."""
        if self.pool is None:
            for r in self.ranges:
                work(*r)
        else:
            list(self.pool.map(lambda r: work(*r), self.ranges))

    def _run(self, work) -> torch.Tensor:
        """``_blocks``, then the blocks' column sums added in block order."""
        self._blocks(work)
        col = np.empty(self.k, np.float64)
        self.kern.sum_blocks(self.parts, col)
        return torch.from_numpy(col)

    def cached(self, kern: torch.Tensor, rho: torch.Tensor, s_out: torch.Tensor) -> torch.Tensor:
        """s_out[n] = kern[n] . rho; returns sum_n kern[n] / s_out[n] (float64)."""
        args = (kern.numpy(), rho.numpy(), s_out.numpy(), self.parts)
        return self._run(lambda b0, b1: self.kern.cached_blocks(*args, b0, b1))

    def _source(self, x: torch.Tensor) -> tuple:
        """(half bits, float32, is half, row stride): how the kernels read log-probs x."""
        flat, half = _flat(x), x.dtype == torch.float16
        return (flat if half else np.zeros(0, np.uint16), np.zeros(0, np.float32) if half else flat,
                half, x.stride(0))

    def row_max(self, x: torch.Tensor, lmax_out: torch.Tensor) -> torch.Tensor:
        """lmax_out = each row's maximum; returns where it is (int64, the first on ties)."""
        arg = torch.empty(self.n, dtype=torch.int64)
        args = (*self._source(x), self.k, lmax_out.numpy(), arg.numpy())
        self._blocks(lambda b0, b1: self.kern.max_blocks(*args, b0, b1))
        return arg

    def labels(self, x: torch.Tensor, lam: float, log_r: torch.Tensor) -> torch.Tensor:
        """argmax_k of lam * x + log_r per row, in float64."""
        out = torch.empty(self.n, dtype=torch.int64)
        args = (*self._source(x), float(lam), log_r.contiguous().numpy(), out.numpy())
        self._blocks(lambda b0, b1: self.kern.label_blocks(*args, b0, b1))
        return out

    def build(self, x: torch.Tensor, lmax: torch.Tensor, lam: float, gc: torch.Tensor,
              rho: torch.Tensor, kern_out: torch.Tensor | None, rmax_out: torch.Tensor,
              s_out: torch.Tensor) -> torch.Tensor:
        """As ``cached`` on the kernel rebuilt from log-probs x (stored to kern_out if given)."""
        store = kern_out is not None
        out = kern_out.numpy() if store else np.zeros((0, self.k), np.float32)
        args = (*self._source(x), lmax.numpy(), np.float32(lam), gc.numpy(), rho.numpy(),
                out, store, rmax_out.numpy(), s_out.numpy(), self.parts)
        return self._run(lambda b0, b1: self.kern.build_blocks(*args, b0, b1))
