"""Frames of a shard set, streamed a batch at a time, with their audio and ground truth.

Each clip gives ``positions`` evenly spaced views (``train=false``: centre crops, no
augmentation); a view is one frame (the centre frame of the view's clip) and the audio
window centred on it. The decoding is deterministic, so labels written in one pass are
joined back to the same frames by (key, frame) in a later one. Nothing here holds more
than one batch of frames: memory does not grow with the shard set.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import torch
from tqdm import tqdm

from pipeline.errors import InputError
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig


@dataclass
class FrameBatch:
    """The frames of one loader batch (clip-major: the views of a clip are adjacent)."""
    images: torch.Tensor            # uint8 [n, 3, H, W]
    gt: torch.Tensor                # float [n, 4] normalised ground-truth box, NaN = none
    label: torch.Tensor             # long [n], -1 = unlabelled
    key: list[str]                  # clip key of each frame
    frame: torch.Tensor             # long [n] view (position) index within the clip
    start: torch.Tensor             # float [n] start of the view's clip, seconds
    batch: dict                     # the loader batch on the device, as the AV model takes it

    def __len__(self) -> int:
        return len(self.key)

    def has_gt(self) -> torch.Tensor:
        return ~torch.isnan(self.gt).any(1)

    def labelled(self) -> torch.Tensor:
        """Indices of the frames with a ground-truth box and a class."""
        return (self.has_gt() & (self.label >= 0)).nonzero().flatten()


def frame_loader_config(base: LoaderConfig, shards: str, positions: int, batch_size: int,
                        workers: int, shuffle: int = 0, seed: int = 0) -> LoaderConfig:
    """The training loader's decoding settings in deterministic evaluation mode; with
    ``shuffle`` > 1 the shard order and the clips (a buffer of that many) are shuffled,
    which changes the order of the frames but never the frames themselves."""
    cfg = copy.deepcopy(base)
    cfg.shards, cfg.sources = shards, []
    cfg.train, cfg.resampled = False, False
    cfg.shuffle_shards, cfg.shuffle_buffer, cfg.seed = shuffle > 1, max(shuffle, 1), seed
    cfg.batch_size, cfg.workers = batch_size, workers
    cfg.clip.positions, cfg.clip.copies, cfg.clip.reverse = positions, 1, False
    return cfg




def frame_batches(loader: ClipLoader, device: torch.device | str = "cpu",
                  desc: str = "frames") -> Iterator[FrameBatch]:
    """One pass of ``loader`` as frame batches: the one place in detection that takes
    loader batches (get batch -> ``DeviceAugment`` on the device -> use)."""
    augment = DeviceAugment.from_loader(loader.cfg).to(torch.device(device))
    for raw in tqdm(loader, desc=desc, unit="batch"):
        frames = torch.as_tensor(raw["video"])               # uint8 [B, V, T, H, W, 3] from the workers
        b, v, t = frames.shape[:3]
        batch = augment(raw)                                 # the AV model's input, on the device
        yield FrameBatch(
            images=frames[:, :, t // 2].permute(0, 1, 4, 2, 3).flatten(0, 1).contiguous(),
            gt=batch["boxes"][:, :, t // 2].reshape(-1, 4).float().cpu(),
            label=batch["label"].cpu().repeat_interleave(v),
            key=[k for k in raw["key"] for _ in range(v)],
            frame=torch.arange(v).repeat(b),
            start=batch["start"].reshape(-1).float().cpu(),
            batch=batch)


def epochs(cfg: LoaderConfig) -> Iterator[FrameBatch]:
    """Frame batches forever, a new shuffle each epoch; an error if a pass yields none."""
    loader = ClipLoader(cfg)
    while True:
        n = 0
        for fb in frame_batches(loader, desc=f"frames (epoch {loader.epoch})"):
            n += len(fb)
            yield fb
        if n == 0:
            raise InputError(f"{cfg.shards}: no readable clips")
