"""Embeddings of labelled shards from exported backbones: backbone features (for kNN
and linear probes) and projected embeddings (for cross-modal retrieval)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import load_config
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig
from pipeline.export.load import load_backbone, read_spec


def loader_for(export_dir: Path, shards: str, batch_size: int, workers: int) -> ClipLoader:
    """An evaluation loader (centred clips, no augmentation) with the input the exported
    backbones expect."""
    v = read_spec(export_dir / "video")["input"]
    overrides = [f"shards={shards}", "resampled=false", "train=false", f"batch_size={batch_size}",
                 f"workers={workers}", f"clip.frames={v['frames']}", f"clip.stride={v['stride']}",
                 f"video.size={v['size']}", f"video.mean={list(v['mean'])}", f"video.std={list(v['std'])}"]
    if (export_dir / "audio").exists():
        a = read_spec(export_dir / "audio")["input"]
        overrides += [f"audio.rate={a['rate']}", f"audio.seconds={a['seconds']}", f"audio.n_mels={a['n_mels']}",
                      f"audio.win_ms={a['win_ms']}", f"audio.hop_ms={a['hop_ms']}"]
    if (export_dir / "text").exists():
        overrides.append(f"clip.text_len={read_spec(export_dir / 'text')['input']['max_len']}")
    return ClipLoader(load_config(LoaderConfig, [], overrides))


@torch.no_grad()
def extract(export_dir: Path, shards: str, pretrained: bool = True, batch_size: int = 32,
            workers: int = 2, seed: int = 0, desc: str = "features") -> dict[str, np.ndarray]:
    """{key, label, <mod>_feat, <mod>_emb} as arrays, rows in key order."""
    torch.manual_seed(seed)  # the random-init baseline is the same network every time
    mods = [m for m in ("video", "audio", "text") if (export_dir / m).exists()]
    nets = {m: load_backbone(export_dir / m, with_head=True, pretrained=pretrained) for m in mods}
    cols: dict[str, list] = {"key": [], "label": []}
    loader = loader_for(export_dir, shards, batch_size, workers)
    augment = DeviceAugment.from_loader(loader.cfg)
    for batch in tqdm(loader, desc=desc, unit="batch"):
        batch = augment(batch)
        cols["key"].extend(batch["key"])
        cols["label"].append(batch["label"].numpy())
        for m, net in nets.items():
            if m == "text":
                feat = net.backbone(batch["text"], batch["text_len"])
            else:
                feat = net.backbone(batch[m][:, 0])
            cols.setdefault(f"{m}_feat", []).append(feat.numpy())
            cols.setdefault(f"{m}_emb", []).append(net.head(feat).numpy())
    out = {k: (np.concatenate(v) if k != "key" else np.asarray(v)) for k, v in cols.items()}
    order = np.argsort(out["key"])
    return {k: v[order] for k, v in out.items()}
