"""The labelling pass's N x (heads x K) float16 log-probabilities, on disk, not in memory.

Appended a batch at a time to one file per head (N x K, row-major), then memory-mapped
back one head at a time for the Sinkhorn solver, which reads it in chunks and never
copies it whole. One file per head, not one N x heads x K file: a head's rows are then
contiguous, so solving head j pages in only head j (2 K bytes per sample), where a
strided view into the joint array would page in every head's bytes.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

BYTES_PER_SAMPLE_PER_HEAD_CLUSTER = 2  # float16 on disk


class LogProbStore:
    """Use as a context manager: the scratch folder is removed on exit."""

    def __init__(self, parent: str | Path, heads: int, clusters: int, tag: str = ""):
        Path(parent).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f"logprobs{tag}.", dir=parent))
        self.heads, self.clusters, self.n = heads, clusters, 0
        self._files = [open(self.path(j), "wb") for j in range(heads)]

    def path(self, head: int) -> Path:
        return self.folder / f"head{head:03d}.f16"

    def append(self, logp: torch.Tensor) -> None:
        """Rows [B, heads, K] of log-probabilities (stored as float16)."""
        if logp.dim() != 3 or logp.shape[1:] != (self.heads, self.clusters):
            raise ValueError(f"log-probs must be [B, {self.heads}, {self.clusters}], got {tuple(logp.shape)}")
        x = logp.detach().to("cpu", torch.float16).numpy()
        for j, fh in enumerate(self._files):
            fh.write(np.ascontiguousarray(x[:, j]).tobytes())
        self.n += x.shape[0]

    def close(self) -> None:
        for fh in self._files:
            fh.close()

    def head(self, j: int) -> torch.Tensor:
        """Head j's [N, K] log-probs, memory-mapped (copy-on-write: never written back)."""
        self.close()
        if self.n == 0:
            return torch.zeros(0, self.clusters, dtype=torch.float16)
        mm = np.memmap(self.path(j), np.float16, mode="c", shape=(self.n, self.clusters))
        return torch.from_numpy(mm)

    def __enter__(self) -> "LogProbStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
