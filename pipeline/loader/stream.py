"""The per-worker sample stream: shards -> tar samples -> shuffle -> decode -> batches.

Everything random is seeded from (seed, epoch, rank, worker, position), so the stream of
a (rank, worker) is a pure function of them. Resuming is then exact: skip the samples
the worker already emitted (read, not decoded) and go on. The DataLoader hands work to
its workers round-robin from its worker 0, so a resumed loader renumbers them
(``first_worker``): its worker 0 plays the worker whose batch was due next.

What crosses to the training process per batch: ``video`` (uint8) and ``wave`` (int16),
written by the worker straight into one block of shared memory, and the small fields
(augmentation parameters, boxes, tokens, labels) as numpy arrays, which travel inside
the batch's pickle. The block is a slot of a ring the training process made before the
workers started (``batch_ring.py``), so only its number crosses: a new shared block
would cost the training process a file-descriptor handshake with the worker (~0.5 ms of
its CPU here, more than all the rest of a batch's transfer).
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from itertools import count
from typing import Iterator

import numpy as np
import torch
import webdataset as wds

from pipeline.errors import InputError
from pipeline.loader.batch_ring import BatchRing, batch_arrays
from pipeline.loader.sample import SampleDecoder

log = logging.getLogger(__name__)
MAX_FAILED_FIRST = 1000  # bad data is skipped, but if the first 1000 reads all fail, the input or a setting is wrong
LOGGED_ERRORS = 10       # per worker, then every 1000th; all are counted (batch["skipped"])


@dataclass
class StreamPlan:
    """What one epoch of one rank looks like; pickled into each DataLoader worker."""
    sources: list[list[str]]          # shard urls per source
    weights: list[float]
    batch_size: int
    resampled: bool
    fixed_length: bool                # every worker yields batches_per_worker (training)
    batches_per_worker: int
    shuffle_shards: bool
    shuffle_buffer: int
    seed: int
    epoch: int
    skip: list[int]                   # samples each worker already emitted this epoch
    done: list[int]                   # batches each worker already produced this epoch
    first_worker: int = 0             # the worker whose batch is due first
    rank: int = 0
    world_size: int = 1


def readers_shards(urls: list[str], reader: int, readers: int) -> list[str]:
    """The shards one (rank, worker) reads when not resampling: every readers-th."""
    return urls[reader::readers]


def keep_as_is(batch: dict) -> dict:
    """The DataLoader's collate_fn: batches are made in the workers, and the small numpy
    fields stay numpy (the default would turn each into a shared-memory tensor)."""
    return batch


class ClipStream(torch.utils.data.IterableDataset):
    def __init__(self, plan: StreamPlan, decoder: SampleDecoder, ring: BatchRing | None = None):
        super().__init__()
        self.plan, self.decoder, self.ring = plan, decoder, ring
        self.errors, self.decoded, self.read = 0, 0, 0
        self.last_error = ""

    def _on_error(self, exn: Exception) -> bool:
        """webdataset handler: count a corrupt shard or member and go on; but a stream
        that has never produced a clip after MAX_FAILED_FIRST failures never will."""
        self.errors += 1
        self.last_error = str(exn)
        if not self.decoded and self.errors >= MAX_FAILED_FIRST:
            raise InputError(f"loader: the first {self.errors} reads all failed and no clip was "
                             f"made, e.g. {self.last_error}")
        if self.errors <= LOGGED_ERRORS or self.errors % 1000 == 0:
            log.warning("skipping unreadable data (%d so far in this worker): %s", self.errors, exn)
        return True

    def _counted(self, samples: Iterator[dict]) -> Iterator[dict]:
        for s in samples:
            self.read += 1
            yield s

    def _urls(self, worker: int, n_workers: int) -> Iterator[dict]:
        p = self.plan
        if p.resampled:
            rng = random.Random(f"{p.seed}/{p.epoch}/{p.rank}/{worker}")
            while True:
                src = rng.choices(range(len(p.sources)), weights=p.weights)[0]
                yield {"url": rng.choice(p.sources[src])}
        urls = [u for s in p.sources for u in s]
        if p.shuffle_shards:
            random.Random(f"{p.seed}/{p.epoch}").shuffle(urls)
        # split by node, then by worker: each (rank, worker) reads a disjoint set of shards
        mine = readers_shards(urls, p.rank * n_workers + worker, p.world_size * n_workers)
        since = 0  # the cycle from which ``mine`` is the current set
        for cycle in count():
            if cycle and not p.fixed_length:
                return  # evaluation: every sample once
            if cycle - since > 1 and not self.read:  # (a cycle's last sample is counted as the next begins)
                rank_shards = [u for w in range(n_workers)
                               for u in readers_shards(urls, p.rank * n_workers + w, p.world_size * n_workers)]
                if since or len(rank_shards) == len(mine):
                    raise InputError(f"loader: rank {p.rank} read no sample from any of its {len(rank_shards)} "
                                     f"shard(s) {rank_shards[:3]}..., e.g. {self.last_error}")
                # a worker whose own shards are all unreadable borrows the rank's others
                # (as a resampled loader would draw them) instead of stopping the run;
                # what it could not read is counted in batch["skipped"]
                log.warning("loader: rank %d worker %d read no sample from its shards %s; reading the "
                            "rank's other shards (e.g. %s)", p.rank, worker, mine[:3], self.last_error)
                mine = [u for u in rank_shards if u not in mine]
                random.Random(f"{p.seed}/{p.epoch}/{p.rank}/{worker}/borrow").shuffle(mine)
                since = cycle
            order = list(mine)
            if cycle and p.shuffle_shards:  # training cycles its shards until the epoch is full
                random.Random(f"{p.seed}/{p.epoch}/{p.rank}/{worker}/{cycle}").shuffle(order)
            yield from ({"url": u} for u in order)

    def _arrays(self, worker_id: int | None) -> tuple[int | None, dict[str, torch.Tensor]]:
        """(ring slot or None, the next batch's arrays): a free slot of the ring in a
        worker (``batch_ring.py``), else a new block (shared when made in a worker)."""
        if worker_id is not None and self.ring is not None:
            got = self.ring.acquire(worker_id)
            if got is not None:
                return got
        return None, batch_arrays(self.decoder.shapes, self.plan.batch_size, self.decoder.clip.decode_device,
                                  worker_id is not None)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        n_workers = info.num_workers if info else 1
        p = self.plan
        worker = ((info.id if info else 0) + p.first_worker) % n_workers
        if info is not None:
            # workers are the parallelism: a lone worker with torch's default threads
            # would compete with the training process for every core
            torch.set_num_threads(1)
        skip = p.skip[worker] if worker < len(p.skip) else 0
        done = p.done[worker] if worker < len(p.done) else 0
        if p.fixed_length and done >= p.batches_per_worker:
            return  # resumed exactly at the end of this worker's epoch
        samples = self._counted(wds.tarfile_to_samples(handler=self._on_error)(self._urls(worker, n_workers)))
        if p.shuffle_buffer > 1:
            samples = wds.shuffle(p.shuffle_buffer, initial=p.shuffle_buffer,
                                  seed=hash((p.seed, p.epoch, p.rank, worker)) & 0x7FFFFFFF)(samples)
        pos, items, errors_seen = 0, [], 0
        worker_id = info.id if info is not None else None
        slot, arrays = self._arrays(worker_id)

        def emit() -> dict:
            # a ring slot crosses as its number: the training process has the block
            out = {"_ring": (worker_id, slot, len(items))} if slot is not None else \
                {k: v[:len(items)] for k, v in arrays.items()}
            for k in items[0]:
                vals = [it[k] for it in items]
                out[k] = vals if k == "key" else np.stack(vals) if isinstance(vals[0], np.ndarray) else np.asarray(vals)
            out.update(_worker=worker, _pos=pos, _skipped=self.errors - errors_seen)
            return out

        for raw in samples:
            pos += 1
            if pos <= skip:
                continue  # already emitted before the checkpoint: not decoded again
            rng = np.random.default_rng([p.seed, p.epoch, p.rank, worker, pos])
            try:
                items.append(self.decoder(raw, rng, {k: v[len(items)] for k, v in arrays.items()}))
                self.decoded += 1
            except Exception as exn:  # a corrupt sample must not stop training
                if not self.decoded and pos - skip >= MAX_FAILED_FIRST:
                    # not corrupt data but a setting no sample meets: say so instead of spinning
                    raise InputError(f"loader: none of the first {pos - skip} samples could be used, "
                                     f"e.g. {raw.get('__key__')} in {raw.get('__url__')}: {exn}") from exn
                self._on_error(RuntimeError(f"sample {raw.get('__key__')} in {raw.get('__url__')}: {exn!r}"))
            if len(items) == p.batch_size:
                out = emit()
                errors_seen, items = self.errors, []
                done += 1
                yield out
                if p.fixed_length and done >= p.batches_per_worker:
                    return
                slot, arrays = self._arrays(worker_id)
        if items and not p.fixed_length:  # evaluation keeps the last partial batch
            yield emit()
