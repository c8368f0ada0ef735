"""Reused shared-memory video buffers between loader workers and the main process.

A DataLoader worker normally returns each batch in a freshly allocated shared-memory
segment. Allocating and first touching that segment costs more than the colour
transform of the clips in it (26 ms for a 16 x 8 x 112 x 112 batch here: tmpfs pages are
faulted in and zeroed one by one, without huge pages), and it is paid for every batch.
This pool keeps a few segments per worker alive for the whole epoch: a worker writes a
batch's video straight into a free slot, the main process copies it out and frees the
slot: one copy in the main process instead of an allocation per batch in the worker.

Slot ownership is a shared int flag per (worker, slot): the worker sets it when it hands
the slot out, the main process clears it after the copy. A worker has at most
``prefetch`` batches requested at once, and the main process asks for the next one
before it copies the last, so ``prefetch + 2`` slots per worker never run out.
"""
from __future__ import annotations

import time

import torch

WAIT_LIMIT_S = 600.0


class SharedBatchPool:
    def __init__(self, workers: int, slots: int, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.flags = torch.zeros(workers, slots, dtype=torch.int32).share_memory_()
        self._buffers: dict[int, torch.Tensor] = {}  # this worker's slots, made on first use
        self._held: dict[tuple[int, int], torch.Tensor] = {}  # main: keeps the mappings alive

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_buffers"], state["_held"] = {}, {}
        return state

    def acquire(self, worker: int) -> tuple[int, torch.Tensor]:
        """(slot, buffer [B, ...]) that is free; called in the worker."""
        start = time.monotonic()
        while True:
            free = (self.flags[worker] == 0).nonzero()
            if len(free):
                slot = int(free[0])
                break
            if time.monotonic() - start > WAIT_LIMIT_S:
                raise RuntimeError(f"loader worker {worker}: no free batch buffer for "
                                   f"{WAIT_LIMIT_S:.0f} s (the main process stopped releasing them)")
            time.sleep(0.001)
        if slot not in self._buffers:
            self._buffers[slot] = torch.empty(self.shape).share_memory_()
        self.flags[worker, slot] = 1
        return slot, self._buffers[slot]

    def release(self, worker: int, slot: int, video: torch.Tensor) -> torch.Tensor:
        """Copy a received batch's video out of its slot and free the slot (main process)."""
        self._held[(worker, slot)] = video  # the same segment comes back: keep it mapped
        out = video.clone()
        self.flags[worker, slot] = 0
        return out
