"""Where a batch's big arrays live: one block of memory per batch (``batch_arrays``), and
with workers a ring of shared blocks made once per epoch and reused (``BatchRing``).

Why a ring: a batch's video and waveforms cross from a worker in shared memory. A new
shared block per batch costs the training process a file-descriptor handshake with the
worker when it unpickles the batch (socket, HMAC challenge, ``recvmsg``: ~0.5 ms of its
CPU per batch here, issue 24) and the worker fresh pages to fault in. The ring's blocks
are made by the training process before its workers start; each worker has them from
the start (inherited by fork; under spawn handed over once, with the dataset), so a
batch crosses as (worker, slot, clips) in its small pickle and the training process
rebuilds its views of the slot.

Reuse is safe: a slot is busy from the moment a worker starts filling it until every
tensor of the batch made from it is gone in the training process (a finalizer on the
object its own storage holds on to). A worker whose slots are all busy
(the consumer holds on to batches) makes a fresh shared block, as without a ring. A new
ring per epoch (per DataLoader): workers of an iteration stopped early never write into
the slots of the next one.
"""
from __future__ import annotations

import math
import warnings
import weakref

import torch

from pipeline.compat import shared_bytes


def _layout(shapes: dict, batch_size: int) -> tuple[dict[str, tuple[int, int]], int]:
    """(byte offset, bytes) of each array in a block (64-byte aligned), and the block's size."""
    out, at = {}, 0
    for k, (shape, dtype) in shapes.items():
        n = batch_size * math.prod(shape) * dtype.itemsize
        out[k] = (at, n)
        at += -(-n // 64) * 64
    return out, at


def _views(block: torch.Tensor, shapes: dict, batch_size: int) -> dict[str, torch.Tensor]:
    places, _ = _layout(shapes, batch_size)
    return {k: block[at:at + n].view(dtype).view(batch_size, *shape)
            for (k, (shape, dtype)), (at, n) in zip(shapes.items(), places.values())}


def batch_arrays(shapes: dict, batch_size: int, device: str = "cpu", shared: bool = False) -> dict[str, torch.Tensor]:
    """A batch's big arrays (``SampleDecoder.shapes``), as views of ONE block of memory;
    ``shared``: of shared memory, so that sending them to the training process is a
    single handshake (the pickler sends a storage once, however many views of it a batch
    holds), not a copy. GPU decoding (in the training process) puts the video on the GPU."""
    if device != "cpu":
        return {k: torch.empty((batch_size, *s), dtype=d, device=device if k == "video" else "cpu")
                for k, (s, d) in shapes.items()}
    size = _layout(shapes, batch_size)[1]
    return _views(shared_bytes(size) if shared else torch.empty(size, dtype=torch.uint8), shapes, batch_size)


class BatchRing:
    """``slots`` shared blocks per worker and their busy flags, both in shared memory."""

    def __init__(self, shapes: dict, batch_size: int, workers: int, slots: int):
        self.shapes, self.batch_size, self.slots = shapes, batch_size, slots
        self.size = _layout(shapes, batch_size)[1]
        self.blocks = shared_bytes(workers * slots * self.size)
        self.busy = torch.zeros(workers, slots, dtype=torch.uint8).share_memory_()

    def acquire(self, worker: int) -> tuple[int, dict[str, torch.Tensor]] | None:
        """In a worker: a free slot of its own, marked busy, and its arrays; None if all
        are busy."""
        free = (self.busy[worker] == 0).nonzero()
        if not len(free):
            return None
        slot = int(free[0])
        self.busy[worker, slot] = 1
        at = (worker * self.slots + slot) * self.size
        return slot, _views(self.blocks[at:at + self.size], self.shapes, self.batch_size)

    def arrays(self, worker: int, slot: int, n: int) -> dict[str, torch.Tensor]:
        """In the training process: the first ``n`` clips of the arrays a worker filled in
        ``slot``; the slot is freed when the last of them is gone."""
        at = (worker * self.slots + slot) * self.size
        # a storage of the batch's own over the slot's memory: it holds ``owner`` (a numpy
        # view) for as long as any tensor or array made from the batch lives
        owner = self.blocks.numpy()[at:at + self.size]
        weakref.finalize(owner, self.busy.__setitem__, (worker, slot), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (numpy views are writable; torch warns on principle)
            block = torch.frombuffer(owner, dtype=torch.uint8)
        return {k: v[:n] for k, v in _views(block, self.shapes, self.batch_size).items()}
