"""Reused shared-memory video buffers between loader workers and the main process.

A DataLoader worker normally returns each batch in a freshly allocated shared-memory
segment. Allocating and first touching that segment costs more than the colour
transform of the clips in it (26 ms for a 16 x 8 x 112 x 112 batch here: tmpfs pages are
faulted in and zeroed one by one, without huge pages), and it is paid for every batch.
This pool keeps a few segments ("slots") per worker alive for the whole epoch: a worker
writes a batch's video straight into a free slot; a slot's segment crosses to the main
process once (``attach``), later batches in it only name it.

The main process lends the caller a view of the slot instead of copying it out (a copy
of a 16-clip batch cost 5 % of a core at 230 clips/s): the slot is free again once
nothing refers to its memory any more, which torch's storage use count tells
(``reclaim``, before each new batch). A caller who keeps batches keeps their slots; a
worker that finds none free for ``FALLBACK_WAIT_S`` writes that batch into memory of its
own, the way a plain DataLoader would. Where torch cannot report the use count, slots
are copied out and freed at once.

Slot ownership is a shared int flag per (worker, slot): the worker sets it when it takes
the slot, the main process clears it.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

FALLBACK_WAIT_S = 0.05


def _use_counter() -> Callable[[torch.Tensor], int] | None:
    """How many tensors and storages share a tensor's memory, if this torch can tell."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return None
    return lambda t: int(count(t.untyped_storage()._cdata))


class SharedBatchPool:
    def __init__(self, workers: int, slots: int, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.flags = torch.zeros(workers, slots, dtype=torch.int32).share_memory_()
        self._buffers: dict[int, torch.Tensor] = {}  # this worker's slots, made on first use
        self._held: dict[tuple[int, int], torch.Tensor] = {}  # main: the slots' memory
        self._idle_count: dict[tuple[int, int], int] = {}  # main: use count with nothing lent
        self._lent: list[tuple[int, int]] = []  # main: slots the caller may still be using

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_buffers={}, _held={}, _idle_count={}, _lent=[])
        return state

    def acquire(self, worker: int) -> tuple[int, torch.Tensor] | None:
        """(slot, buffer [B, ...]) that is free, or None after ``FALLBACK_WAIT_S`` (worker)."""
        start = time.monotonic()
        while True:
            free = (self.flags[worker] == 0).nonzero()
            if len(free):
                slot = int(free[0])
                break
            if time.monotonic() - start > FALLBACK_WAIT_S:
                return None
            time.sleep(0.001)
        if slot not in self._buffers:
            self._buffers[slot] = torch.empty(self.shape).share_memory_()
        self.flags[worker, slot] = 1
        return slot, self._buffers[slot]

    def attach(self, worker: int, slot: int, video: torch.Tensor) -> None:
        """Keep a slot's segment, received once from its worker (main process)."""
        self._held[(worker, slot)] = video
        count = _use_counter()
        if count is not None:
            self._idle_count[(worker, slot)] = count(video)

    def hand_out(self, worker: int, slot: int, n: int) -> torch.Tensor:
        """The first ``n`` clips of a filled slot for the caller (main process): a view,
        lent until nothing refers to it; a copy, and the slot freed, if that is unknowable."""
        video = self._held[(worker, slot)][:n]
        if (worker, slot) not in self._idle_count:
            video = video.clone()
            self.flags[worker, slot] = 0
            return video
        self._lent.append((worker, slot))
        return video

    def reclaim(self) -> None:
        """Free the lent slots nothing refers to any more (main process)."""
        count, still = _use_counter(), []
        for key in self._lent:
            if count(self._held[key]) > self._idle_count[key]:
                still.append(key)
            else:
                self.flags[key] = 0
        self._lent = still
