"""Training/evaluation loader over shards: split across nodes and workers, exactly resumable.

Batches leave the workers as uint8 video and int16 waveforms plus per-sample
augmentation parameters (``sample.py``); ``DeviceAugment`` turns them into the models'
float input on the training device. The loader's position (epoch, samples and batches
each worker emitted, the worker due next) is part of a training checkpoint; restored in
a new process, the next batches are exactly those an uninterrupted run would have seen.

Training loaders have a fixed epoch length on every rank (``epoch_batches``), resampled
or not: ranks that run collectives each step must all get the same number of batches
(open_clip's ``with_epoch``). Without resampling each (rank, worker) cycles through its
own share of the shards, so every one of them needs a shard. Evaluation loaders
(``train=false, resampled=false``) read every sample once.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field, replace
from typing import Iterator

import braceexpand
import torch

from pipeline.errors import InputError
from pipeline.loader.audio_transforms import AudioConfig
from pipeline.loader.backend_choice import resolve_clip
from pipeline.loader.batch_ring import BatchRing
from pipeline.loader.sample import MODALITIES, ClipConfig, SampleDecoder
from pipeline.loader.stream import ClipStream, StreamPlan, keep_as_is
from pipeline.loader.video_transforms import VideoAugConfig


@dataclass
class SourceConfig:
    shards: str = field(default="", metadata={"help": "shard folder, glob or brace pattern (dir/shard-{000000..000009}.tar)"})
    weight: float = field(default=1.0, metadata={"help": "sampling weight of this source (resampled mode)", "above": 0})


@dataclass
class LoaderConfig:
    shards: str = field(default="", metadata={"help": "shards of a single source (folder, glob or brace pattern); or use sources"})
    sources: list[SourceConfig] = field(default_factory=list, metadata={"help": "several weighted sources"})
    modalities: list[str] = field(default_factory=lambda: list(MODALITIES), metadata={
        "help": "what to decode: [video, audio] | [audio] (audio-only corpora, no video decode) | [video] (no audio work); text always"})
    batch_size: int = field(default=8, metadata={"help": "clips per batch per rank", "min": 1})
    workers: int = field(default=2, metadata={"help": "DataLoader worker processes", "min": 0})
    resampled: bool = field(default=True, metadata={"help": "draw shards with replacement (false: each rank and worker reads its own shards)"})
    epoch_batches: int = field(default=100, metadata={"help": "batches per epoch per rank when training (resampled or not)", "min": 1})
    shuffle_shards: bool = field(default=True, metadata={"help": "shuffle the shard order each epoch (non-resampled mode)"})
    shuffle_buffer: int = field(default=64, metadata={"help": "sample shuffle buffer per worker (1 = off)", "min": 1})
    seed: int = field(default=0, metadata={"help": "seed of every random choice of the loader", "min": 0})
    train: bool = field(default=True, metadata={"help": "random clip positions and augmentations, fixed epoch length (false: centred, none, every sample once)"})
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


def check_loader(cfg: LoaderConfig, n_shards: int, world_size: int) -> None:
    """Settings under which no batch could ever come, or ranks would wait on each other
    for ever: one clear error before any work."""
    bad = sorted(set(cfg.modalities) - set(MODALITIES))
    if bad or not cfg.modalities:
        raise InputError(f"loader.modalities={list(cfg.modalities)}: choose one or both of {list(MODALITIES)}")
    fixed = cfg.resampled or cfg.train
    if fixed and cfg.epoch_batches < 1:
        raise InputError(f"loader.epoch_batches={cfg.epoch_batches}: a training epoch needs at least "
                         f"one batch per rank")
    if cfg.batch_size < 1:
        raise InputError(f"loader.batch_size={cfg.batch_size}: must be at least 1")
    readers = world_size * max(cfg.workers, 1)
    if cfg.train and not cfg.resampled and n_shards < readers:
        raise InputError(
            f"loader: {n_shards} shard(s) for {world_size} rank(s) x {max(cfg.workers, 1)} worker(s): "
            f"without resampling every rank and worker reads shards of its own, so a reader would "
            f"have none and the ranks could not keep step; use loader.resampled=true, fewer "
            f"workers, or at least {readers} shards")
    if cfg.clip.decode_device == "cuda" and cfg.workers:
        raise InputError("loader.clip.decode_device=cuda decodes in the training process "
                         "(CUDA does not cross into DataLoader workers): set loader.workers=0")


class ClipLoader:
    """Iterate one epoch per ``iter()``; ``state_dict``/``load_state_dict`` for resume."""

    def __init__(self, cfg: LoaderConfig, rank: int = 0, world_size: int = 1):
        self.cfg = cfg
        specs = cfg.sources or [SourceConfig(cfg.shards, 1.0)]
        if not any(s.shards for s in specs):
            raise InputError("loader: set loader.shards (or loader.sources)")
        self.sources = [expand_shards(s.shards) for s in specs]
        self.weights = [s.weight for s in specs]
        check_loader(cfg, sum(len(s) for s in self.sources), world_size)
        # backend=auto is resolved here, before any worker starts: every worker gets the
        # chosen decoder, and ``self.cfg`` says which (the caller's config is left as is)
        self.auto_backend = cfg.clip.backend == "auto"
        self._use_clip(resolve_clip(cfg.clip, [u for s in self.sources for u in s], cfg.modalities))
        self.rank, self.world_size = rank, world_size
        self.n_workers = max(cfg.workers, 1)
        self.epoch = 0
        self._reset_position()
        self.skipped_total = 0

    def _reset_position(self) -> None:
        self.batch = 0
        self.skip = [0] * self.n_workers
        self.done = [0] * self.n_workers
        self.next_worker = 0

    @property
    def fixed_length(self) -> bool:
        return self.cfg.resampled or self.cfg.train

    @property
    def batches_per_worker(self) -> int:
        return -(-self.cfg.epoch_batches // self.n_workers)

    def __len__(self) -> int:
        if not self.fixed_length:
            raise TypeError("an evaluation loader (train=false, resampled=false) has no fixed length")
        return self.batches_per_worker * self.n_workers

    def _plan(self) -> StreamPlan:
        c = self.cfg
        return StreamPlan(self.sources, self.weights, c.batch_size, c.resampled, self.fixed_length,
                          self.batches_per_worker, c.shuffle_shards, c.shuffle_buffer, c.seed,
                          self.epoch, list(self.skip), list(self.done), self.next_worker,
                          self.rank, self.world_size)

    def __iter__(self) -> Iterator[dict]:
        workers = self.cfg.workers
        pin = torch.cuda.is_available() and self.cfg.clip.decode_device == "cpu"
        # each worker's batches in a ring of shared blocks, reused (batch_ring.py): room for
        # the batches in flight (prefetch) plus the one being filled and the one in use
        ring = BatchRing(self.decoder.shapes, self.cfg.batch_size, workers, self.cfg.prefetch + 2) \
            if workers and self.cfg.clip.decode_device == "cpu" else None
        dl = torch.utils.data.DataLoader(
            ClipStream(self._plan(), self.decoder, ring), batch_size=None, collate_fn=keep_as_is,
            num_workers=workers, prefetch_factor=self.cfg.prefetch if workers else None,
            multiprocessing_context=self.cfg.mp_context if workers else None,
            pin_memory=pin, persistent_workers=False)
        for batch in dl:
            if "_ring" in batch:  # the arrays are in a slot of the ring
                arrays = ring.arrays(*batch.pop("_ring"))
                batch.update({k: v.pin_memory() for k, v in arrays.items()} if pin else arrays)
                del arrays
            w = int(batch.pop("_worker"))
            self.skip[w] = int(batch.pop("_pos"))
            self.done[w] += 1
            self.batch += 1
            self.next_worker = (w + 1) % self.n_workers
            batch["skipped"] = int(batch.pop("_skipped"))
            self.skipped_total += batch["skipped"]
            yield batch
            del batch  # the consumer's alone: its ring slot is free once the consumer drops it
        self.epoch += 1
        self._reset_position()

    def state_dict(self) -> dict:
        """Plain ints and lists: checkpoints load it with ``torch.load(weights_only=True)``."""
        return {"epoch": self.epoch, "batch": self.batch, "skip": list(self.skip),
                "done": list(self.done), "next_worker": self.next_worker,
                "workers": self.n_workers, "skipped_total": self.skipped_total,
                "backend": self.cfg.clip.backend}

    def load_state_dict(self, state: dict) -> None:
        if state["workers"] != self.n_workers:
            raise InputError(f"checkpoint was written with loader.workers={state['workers']}; "
                             f"resume with the same value (now {self.n_workers}) to replay exactly")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self.skip, self.done = [int(x) for x in state["skip"]], [int(x) for x in state["done"]]
        self.next_worker = int(state.get("next_worker", 0))
        self.skipped_total = int(state.get("skipped_total", 0))
        backend = state.get("backend")
        if self.auto_backend and backend and backend != self.cfg.clip.backend:
            # backend=auto on both sides: decode with the checkpoint's choice, so a resumed
            # run runs as the run it continues, pixel for pixel (with crop_in_decoder PyAV crops
            # in its own conversion, the others with torch: ~2 levels of 255 apart)
            self._use_clip(replace(self.cfg.clip, backend=str(backend)))

    def _use_clip(self, clip: ClipConfig) -> None:
        """Decode with ``clip`` (its backend resolved): the one place the decoder is made."""
        c = self.cfg = replace(self.cfg, clip=clip)
        self.decoder = SampleDecoder(c.clip, c.video, c.audio, c.train, tuple(c.modalities))
