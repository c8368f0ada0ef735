"""Training/evaluation loader over shards: split across nodes and workers, exactly resumable.

The loader's position (epoch, batches seen, samples each worker emitted) is part of a
training checkpoint; restored in a new process, the next batches are exactly those an
uninterrupted run would have seen.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Iterator

import braceexpand
import torch

from pipeline.loader.audio_transforms import AudioConfig
from pipeline.loader.batch_pool import SharedBatchPool
from pipeline.loader.sample import ClipConfig, SampleDecoder
from pipeline.loader.stream import ClipStream, StreamPlan, from_transfer
from pipeline.loader.video_transforms import VideoAugConfig
from pipeline.errors import InputError


@dataclass
class SourceConfig:
    shards: str = field(default="", metadata={"help": "shard folder, glob or brace pattern (dir/shard-{000000..000009}.tar)"})
    weight: float = field(default=1.0, metadata={"help": "sampling weight of this source (resampled mode)", "above": 0})


@dataclass
class LoaderConfig:
    shards: str = field(default="", metadata={"help": "shards of a single source (folder, glob or brace pattern); or use sources"})
    sources: list[SourceConfig] = field(default_factory=list, metadata={"help": "several weighted sources"})
    batch_size: int = field(default=8, metadata={"help": "clips per batch per rank", "min": 1})
    workers: int = field(default=2, metadata={"help": "DataLoader worker processes", "min": 0})
    resampled: bool = field(default=True, metadata={"help": "draw shards with replacement; every rank and worker yields epoch_batches"})
    epoch_batches: int = field(default=100, metadata={"help": "batches per epoch per rank (resampled mode)", "min": 1})
    shuffle_shards: bool = field(default=True, metadata={"help": "shuffle the shard order each epoch (non-resampled mode)"})
    shuffle_buffer: int = field(default=64, metadata={"help": "sample shuffle buffer per worker (1 = off)", "min": 1})
    seed: int = field(default=0, metadata={"help": "seed of every random choice of the loader", "min": 0})
    train: bool = field(default=True, metadata={"help": "random clip positions and augmentations (false: centred, none)"})
    prefetch: int = field(default=2, metadata={"help": "batches prefetched per worker", "min": 1})
    mp_context: str = field(default="fork", metadata={"help": "worker start method: fork | spawn | forkserver", "choices": ["fork", "spawn", "forkserver"]})
    clip: ClipConfig = field(default_factory=ClipConfig)
    video: VideoAugConfig = field(default_factory=VideoAugConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)


def expand_shards(pattern: str) -> list[str]:
    """Shard paths of a folder, glob or brace pattern; a clear error when none exist."""
    if os.path.isdir(pattern):
        found = sorted(glob.glob(os.path.join(pattern, "*.tar")))
    elif "{" in pattern:
        found = [p for p in braceexpand.braceexpand(pattern)]
        missing = [p for p in found if not os.path.exists(p)]
        if missing:
            raise InputError(f"shard pattern {pattern!r}: {len(missing)} file(s) missing, e.g. {missing[0]}")
    else:
        found = sorted(glob.glob(pattern))
    if not found:
        raise InputError(f"no shards found for {pattern!r}")
    return found


class ClipLoader:
    """Iterate one epoch per ``iter()``; ``state_dict``/``load_state_dict`` for resume."""

    def __init__(self, cfg: LoaderConfig, rank: int = 0, world_size: int = 1):
        self.cfg = cfg
        specs = cfg.sources or [SourceConfig(cfg.shards, 1.0)]
        if not any(s.shards for s in specs):
            raise InputError("loader: set loader.shards (or loader.sources)")
        self.sources = [expand_shards(s.shards) for s in specs]
        self.weights = [s.weight for s in specs]
        self.rank, self.world_size = rank, world_size
        self.n_workers = max(cfg.workers, 1)
        self.decoder = SampleDecoder(cfg.clip, cfg.video, cfg.audio, cfg.train)
        self.epoch = 0
        self._reset_position()
        self.skipped_total = 0

    def _reset_position(self) -> None:
        self.batch = 0
        self.skip = [0] * self.n_workers
        self.done = [0] * self.n_workers

    @property
    def batches_per_worker(self) -> int:
        return -(-self.cfg.epoch_batches // self.n_workers)

    def __len__(self) -> int:
        if not self.cfg.resampled:
            raise TypeError("a non-resampled loader has no fixed length")
        return self.batches_per_worker * self.n_workers

    def _plan(self) -> StreamPlan:
        c = self.cfg
        return StreamPlan(self.sources, self.weights, c.batch_size, c.resampled,
                          self.batches_per_worker, c.shuffle_shards, c.shuffle_buffer, c.seed,
                          self.epoch, list(self.skip), list(self.done), self.rank, self.world_size)

    def __iter__(self) -> Iterator[dict]:
        pool = None
        if self.cfg.workers:
            # in flight (prefetch), being filled, lent to the caller (this and the last batch)
            pool = SharedBatchPool(self.cfg.workers, self.cfg.prefetch + 3,
                                   (self.cfg.batch_size, *self.decoder.video_shape))
        dl = torch.utils.data.DataLoader(
            ClipStream(self._plan(), self.decoder, pool), batch_size=None,
            num_workers=self.cfg.workers, prefetch_factor=self.cfg.prefetch if self.cfg.workers else None,
            multiprocessing_context=self.cfg.mp_context if self.cfg.workers else None,
            persistent_workers=False)
        for batch in dl:
            w, slot, n = int(batch.pop("_worker")), int(batch.pop("_slot")), int(batch.pop("_n"))
            if slot >= 0:
                if "video" in batch:
                    pool.attach(w, slot, batch.pop("video"))
                batch = from_transfer(batch)
                batch["video"] = pool.hand_out(w, slot, n)
            self.skip[w] = int(batch.pop("_pos"))
            self.done[w] += 1
            self.batch += 1
            batch["skipped"] = int(batch.pop("_skipped"))
            self.skipped_total += batch["skipped"]
            yield batch
            if pool is not None:
                pool.reclaim()  # slots of batches the caller has let go of
        self.epoch += 1
        self._reset_position()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "skip": list(self.skip),
                "done": list(self.done), "workers": self.n_workers,
                "skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict) -> None:
        if state["workers"] != self.n_workers:
            raise InputError(f"checkpoint was written with loader.workers={state['workers']}; "
                             f"resume with the same value (now {self.n_workers}) to replay exactly")
        self.epoch, self.batch = state["epoch"], state["batch"]
        self.skip, self.done = list(state["skip"]), list(state["done"])
        self.skipped_total = state.get("skipped_total", 0)


