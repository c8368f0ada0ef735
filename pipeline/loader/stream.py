"""The per-worker sample stream: shards -> tar samples -> shuffle -> decode -> batches.

Everything random is seeded from (seed, epoch, rank, worker, position), so the stream of
a (rank, worker) is a pure function of them. Resuming is then exact: skip the samples
the worker already emitted (without decoding them) and go on.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

import numpy as np
import torch
import webdataset as wds

from pipeline.loader.batch_pool import SharedBatchPool
from pipeline.loader.sample import SampleDecoder
from pipeline.errors import InputError

log = logging.getLogger(__name__)
MAX_FAILED_FIRST = 1000  # bad samples are skipped, but if the first 1000 all fail, a setting is wrong


@dataclass
class StreamPlan:
    """What one epoch of one rank looks like; pickled into each DataLoader worker."""
    sources: list[list[str]]          # shard urls per source
    weights: list[float]
    batch_size: int
    resampled: bool
    batches_per_worker: int           # resampled mode: fixed epoch length
    shuffle_shards: bool
    shuffle_buffer: int
    seed: int
    epoch: int
    skip: list[int]                   # samples each worker already emitted this epoch
    done: list[int]                   # batches each worker already produced this epoch
    rank: int = 0
    world_size: int = 1


def collate(items: list[dict], video: torch.Tensor, decoder: SampleDecoder) -> dict:
    """Batch the samples; their video views are already rows of ``video``, their audio
    views become spectrograms here, a batch at a time."""
    out = {"video": video[:len(items)],
           "audio": decoder.spectrograms(torch.stack([it["wave"] for it in items]),
                                         torch.stack([it["spec_masks"] for it in items]))}
    for k in items[0]:
        if k in ("video", "wave", "spec_masks"):
            continue
        vals = [it[k] for it in items]
        if isinstance(vals[0], torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], (bool, int)) and k != "start":
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out


def for_transfer(batch: dict) -> dict:
    """A worker's batch, less its video (which is in a pool slot), as it crosses to the
    main process. Torch would put every tensor in a new shared-memory segment and pass its
    descriptor over a socket, per batch; these small ones travel inline as numpy arrays."""
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in batch.items() if k != "video"}


def from_transfer(batch: dict) -> dict:
    """``for_transfer`` undone in the main process: the numpy arrays as tensors again."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


class ClipStream(torch.utils.data.IterableDataset):
    def __init__(self, plan: StreamPlan, decoder: SampleDecoder, pool: SharedBatchPool | None = None):
        super().__init__()
        self.plan, self.decoder, self.pool = plan, decoder, pool
        self.errors = 0

    def _on_error(self, exn: Exception) -> bool:
        """webdataset handler: count a corrupt shard or member, log it and go on."""
        self.errors += 1
        log.warning("skipping unreadable data: %s", exn)
        return True

    def _urls(self, rank: int, world: int, worker: int, n_workers: int) -> Iterator[dict]:
        p = self.plan
        if p.resampled:
            rng = random.Random(f"{p.seed}/{p.epoch}/{rank}/{worker}")
            while True:
                src = rng.choices(range(len(p.sources)), weights=p.weights)[0]
                yield {"url": rng.choice(p.sources[src])}
        urls = [u for s in p.sources for u in s]
        if p.shuffle_shards:
            random.Random(f"{p.seed}/{p.epoch}").shuffle(urls)
        # split by node, then by worker: each (rank, worker) reads a disjoint set of shards
        yield from ({"url": u} for u in islice(urls, rank * n_workers + worker, None, world * n_workers))

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rank, world = self.plan.rank, self.plan.world_size
        if info is not None:
            # workers are the parallelism: a lone worker with torch's default threads
            # would compete with the training process for every core
            torch.set_num_threads(1)
        p = self.plan
        samples = wds.tarfile_to_samples(handler=self._on_error)(self._urls(rank, world, worker, n_workers))
        if p.shuffle_buffer > 1:
            samples = wds.shuffle(p.shuffle_buffer, initial=p.shuffle_buffer,
                                  seed=hash((p.seed, p.epoch, rank, worker)) & 0x7FFFFFFF)(samples)
        skip = p.skip[worker] if worker < len(p.skip) else 0
        done = p.done[worker] if worker < len(p.done) else 0
        pos, batch, errors_seen, decoded = 0, [], 0, 0
        if p.resampled and done >= p.batches_per_worker:
            return  # resumed exactly at the end of this worker's epoch
        slot, video = self._buffer(worker, info is not None)
        mapped: set[int] = set()  # pool slots whose memory the main process already holds

        def emit() -> dict:
            out = collate(batch, video, self.decoder)
            if slot >= 0:
                out = for_transfer(out)
                if slot not in mapped:  # the whole slot goes once; later batches name it
                    out["video"] = video
                    mapped.add(slot)
            out.update(_worker=worker, _slot=slot, _n=len(batch), _pos=pos,
                       _skipped=self.errors - errors_seen)
            return out

        for raw in samples:
            pos += 1
            if pos <= skip:
                continue  # already emitted before the checkpoint: not decoded again
            rng = np.random.default_rng([p.seed, p.epoch, rank, worker, pos])
            try:
                batch.append(self.decoder(raw, rng, video_out=video[len(batch)]))
                decoded += 1
            except Exception as exn:  # a corrupt sample must not stop training
                self._on_error(RuntimeError(f"sample {raw.get('__key__')} in {raw.get('__url__')}: {exn!r}"))
                if not decoded and pos - skip >= MAX_FAILED_FIRST:
                    # not corrupt data but a setting no sample meets: say so instead of spinning
                    raise InputError(f"loader: none of the first {pos - skip} samples could be used, "
                                     f"e.g. {raw.get('__key__')} in {raw.get('__url__')}: {exn}") from exn
            if len(batch) == p.batch_size:
                out = emit()
                errors_seen = self.errors
                batch = []
                done += 1
                yield out
                if p.resampled and done >= p.batches_per_worker:
                    return
                slot, video = self._buffer(worker, info is not None)
        if batch and not p.resampled:  # evaluation keeps the last partial batch
            yield emit()

    def _buffer(self, worker: int, in_worker: bool) -> tuple[int, torch.Tensor]:
        """The next batch's video buffer: a pool slot in a worker when one is free (slot
        index >= 0), memory of its own otherwise (-1)."""
        shape = (self.plan.batch_size, *self.decoder.video_shape)
        if in_worker and self.pool is not None:
            taken = self.pool.acquire(worker)
            if taken is not None:
                return taken
        return -1, torch.empty(shape)
