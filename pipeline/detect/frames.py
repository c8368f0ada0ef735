"""Frames of a shard set with their audio, ground truth and (optionally) the AV model's
heatmaps and clusters, gathered in one deterministic pass of the evaluation loader.

Each clip gives ``positions`` evenly spaced views (``train=false``: centre crops, no
augmentation); a view is one frame (the centre frame of the view's clip) and the audio
window centred on it. The pass is deterministic, so pseudo labels written from it can be
joined back to the same frames by (key, frame) later.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards
from pipeline.errors import InputError


@dataclass
class FrameSet:
    images: torch.Tensor            # uint8 [N, 3, H, W]
    gt: torch.Tensor                # float [N, 4] normalised ground-truth box, NaN = none
    label: torch.Tensor             # long [N], -1 = unlabelled
    key: list[str]                  # clip key of each frame
    frame: torch.Tensor             # long [N] view (position) index within the clip
    start: torch.Tensor             # float [N] start of the view's clip, seconds
    # per AV model name: heat [N, h, w] (cosine, own audio), cluster [N] (argmax of the
    # summed head scores), scores [N, K] (summed head log-probabilities)
    av: dict[str, dict[str, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.key)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])  # type: ignore[return-value]

    def has_gt(self) -> torch.Tensor:
        return ~torch.isnan(self.gt).any(1)


def frame_loader_config(base: LoaderConfig, shards: str, positions: int, batch_size: int,
                        workers: int) -> LoaderConfig:
    """The training loader's decoding settings in deterministic evaluation mode."""
    cfg = copy.deepcopy(base)
    cfg.shards, cfg.sources = shards, []
    cfg.train, cfg.resampled, cfg.shuffle_shards, cfg.shuffle_buffer = False, False, False, 1
    cfg.batch_size, cfg.workers = batch_size, workers
    cfg.clip.positions, cfg.clip.copies, cfg.clip.reverse = positions, 1, False
    return cfg


@torch.no_grad()
def collect_frames(cfg: LoaderConfig, models: dict | None = None, desc: str = "frames") -> FrameSet:
    """One pass over ``cfg.shards``; with ``models`` (name -> AVLocMethod) also their outputs."""
    models = models or {}
    for m in models.values():
        m.eval()
    parts: dict[str, list] = {k: [] for k in ("images", "gt", "label", "key", "frame", "start")}
    av: dict[str, dict[str, list]] = {n: {"heat": [], "cluster": [], "scores": []} for n in models}
    augment = DeviceAugment.from_loader(cfg)
    for batch in tqdm(ClipLoader(cfg), desc=desc, unit="batch"):
        frames = batch["video"]                              # uint8 [B, V, T, H, W, 3] from the workers
        b, v, t = frames.shape[:3]
        parts["images"].append(frames[:, :, t // 2].permute(0, 1, 4, 2, 3).flatten(0, 1))
        batch = augment(batch)
        parts["gt"].append(batch["boxes"][:, :, t // 2].reshape(-1, 4))
        parts["label"].append(batch["label"].repeat_interleave(v))
        parts["key"].extend(k for k in batch["key"] for _ in range(v))
        parts["frame"].append(torch.arange(v).repeat(b))
        parts["start"].append(batch["start"].reshape(-1))
        for name, model in models.items():
            out = model.localise(batch)
            av[name]["heat"].append(out["heat"])
            av[name]["cluster"].append(out["cluster"])
            av[name]["scores"].append(torch.log_softmax(out["v_logits"], 1) + torch.log_softmax(out["a_logits"], 1))
    if not parts["key"]:
        raise InputError(f"{cfg.shards}: no readable clips")
    cat = {k: torch.cat(v) for k, v in parts.items() if k != "key"}
    return FrameSet(key=parts["key"], av={n: {k: torch.cat(v) for k, v in d.items()} for n, d in av.items()},
                    **cat)


def class_names(shards: str) -> list[str]:
    """Class names of a shard set from its ``index.json`` (label index order); [] if none."""
    first = Path(expand_shards(shards)[0])
    index = (Path(shards) if os.path.isdir(shards) else first.parent) / "index.json"
    if index.is_file():
        return [str(c) for c in json.loads(index.read_text()).get("classes", [])]
    return []
