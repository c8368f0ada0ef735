"""Features of labelled shards from exported backbones, streamed to memory-mapped
arrays as they are extracted (``feature_store``): backbone features (kNN, linear probes,
retrieval, clustering) and projected embeddings (cross-modal retrieval).

With ``clips`` > 1 each sample is seen as that many uniformly spaced clips (centre
crop), and its row is the mean over them; the audio windows follow the clips.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.config import load_config
from pipeline.loader.batches import device_batches, eval_device
from pipeline.eval.feature_store import FeatureSet, FeatureWriter
from pipeline.models.load import WithHead, load_backbone, read_spec
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards

MODALITIES = ("video", "audio", "text")


def loader_for(export_dir: Path, shards: str, batch_size: int, workers: int, clips: int = 1,
               modalities: tuple[str, ...] | list[str] = MODALITIES) -> ClipLoader:
    """An evaluation loader (uniformly spaced clips, centre crop, no augmentation) with
    the input the exported backbones expect; ``batch_size`` counts clips. It decodes only
    the media of ``modalities`` (the networks used): audio-only shards (ESC-50) load with
    ``modalities=("audio",)``, which a protocol sets itself, never the user."""
    v = read_spec(export_dir / "video")["input"]
    media = [m for m in ("video", "audio") if m in modalities]
    overrides = [f"shards={shards}", "resampled=false", "train=false", f"batch_size={max(1, batch_size // clips)}",
                 f"modalities=[{', '.join(media or ('video', 'audio'))}]",
                 f"workers={workers}", f"clip.positions={clips}", f"clip.frames={v['frames']}",
                 f"clip.stride={v['stride']}", f"video.size={v['size']}", f"video.mean={list(v['mean'])}",
                 f"video.std={list(v['std'])}"]
    if (export_dir / "audio").exists():
        a = read_spec(export_dir / "audio")["input"]
        overrides += [f"audio.rate={a['rate']}", f"audio.seconds={a['seconds']}", f"audio.n_mels={a['n_mels']}",
                      f"audio.win_ms={a['win_ms']}", f"audio.hop_ms={a['hop_ms']}",
                      f"audio.features={a.get('audio_features', 'logmel')}"]  # exports before it: log-mel
    if (export_dir / "text").exists():
        overrides.append(f"clip.text_len={read_spec(export_dir / 'text')['input']['max_len']}")
    return ClipLoader(load_config(LoaderConfig, [], overrides))


def fingerprint(export_dir: Path, shards: str, pretrained: bool, seed: int, clips: int, mods) -> str:
    """What decides the features: the export's files, the shards (names, sizes, times)
    and the settings; a cached folder with another fingerprint is extracted again."""
    files = [(str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in expand_shards(shards)]
    weights = sorted((str(p), os.stat(p).st_mtime_ns) for p in Path(export_dir).glob("*/*.safetensors"))
    blob = {"export": str(Path(export_dir).resolve()), "weights": weights, "shards": files,
            "pretrained": pretrained, "seed": seed, "clips": clips, "modalities": list(mods)}
    return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _encode(net, batch: dict, mod: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(backbone feature, projected embedding) of every sample, averaged over its clips."""
    if mod == "text":
        feat = net.backbone(batch["text"], batch["text_len"])
        return feat, net.head(feat)
    x = batch[mod]  # [B, V, ...]
    b, v = x.shape[:2]
    feat = net.backbone(x.flatten(0, 1))
    emb = net.head(feat)
    return feat.view(b, v, -1).mean(1), emb.view(b, v, -1).mean(1)


def _with_head(folder: Path, pretrained: bool, device: str) -> WithHead:
    """Backbone and head; an export without a head (an imported supervised backbone) gets
    the identity, so its embedding column is its backbone feature."""
    spec = read_spec(folder)
    if "head" in spec:
        return load_backbone(folder, with_head=True, pretrained=pretrained, device=device)
    return WithHead(load_backbone(folder, pretrained=pretrained, device=device), nn.Identity(), spec["kind"])


@torch.no_grad()
def extract(export_dir: str | Path, shards: str, folder: str | Path, pretrained: bool = True,
            batch_size: int = 32, workers: int = 2, seed: int = 0, clips: int = 1,
            modalities: tuple[str, ...] = MODALITIES, desc: str = "features") -> FeatureSet:
    """Columns ``<mod>_feat``, ``<mod>_emb`` (and ``av_feat``: both unit features side by
    side, when there is audio) in ``folder``; reused when already extracted alike."""
    export_dir = Path(export_dir)
    mods = [m for m in modalities if (export_dir / m).exists()]
    fp = fingerprint(export_dir, shards, pretrained, seed, clips, mods)
    done = FeatureSet.open(folder, fp)
    if done is not None:
        return done
    torch.manual_seed(seed)  # the random-init baseline is the same network every time
    device = eval_device()
    nets = {m: _with_head(export_dir / m, pretrained, str(device)) for m in mods}
    writer = FeatureWriter(folder)
    try:
        loader = loader_for(export_dir, shards, batch_size, workers, clips, mods)
        for batch in tqdm(device_batches(loader, device), desc=desc, unit="batch"):
            cols = {}
            for m, net in nets.items():
                feat, emb = _encode(net, batch, m)
                cols[f"{m}_feat"], cols[f"{m}_emb"] = feat.float().cpu().numpy(), emb.float().cpu().numpy()
            if "video_feat" in cols and "audio_feat" in cols:
                both = torch.cat([F.normalize(torch.as_tensor(cols["video_feat"]), dim=1),
                                  F.normalize(torch.as_tensor(cols["audio_feat"]), dim=1)], 1)
                cols["av_feat"] = both.numpy()
            writer.add(list(batch["key"]), batch["label"].cpu().numpy(), cols)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(fp, {"shards": shards, "export": str(export_dir), "pretrained": pretrained,
                              "clips": clips})
