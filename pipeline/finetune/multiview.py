"""Testing a fine-tuned classifier as GDT does: every test sample is seen as ``clips``
uniformly spaced clips x ``crops`` spatial crops; the softmax (or, as GDT's code, the
logits) is averaged over all of a video's views (**video-level accuracy**), and each
clip's centre-crop prediction is also scored on its own (**clip-level accuracy**, what a
single-clip test measures).

Spatial crops: the loader gives the centre square of each frame resized to ``resize``
(its short side); the crops are its left, centre and right ``size`` squares, vertically
centred (1 crop: the centre one). Each rank tests its share of the shards; the small
per-sample results (N x classes) are gathered to every rank.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from pipeline.loader.batches import device_batches
from pipeline.shard.keys import video_of


def spatial_crops(video: torch.Tensor, size: int, crops: int) -> torch.Tensor:
    """[..., T, R, R] -> [..., crops, T, size, size] (insert the crop axis before C: the
    input is [B, P, C, T, R, R], the output [B, P, crops, C, T, size, size])."""
    r = video.shape[-1]
    if size > r:
        raise ValueError(f"test crops of {size} px from a {r} px square: set test_resize >= the crop size")
    top = (r - size) // 2
    lefts = [(r - size) // 2] if crops == 1 else [0, (r - size) // 2, r - size]
    return torch.stack([video[..., top:top + size, x:x + size] for x in lefts], dim=2)


def view_scores(logits: torch.Tensor, aggregate: str) -> torch.Tensor:
    """[B, P, X, classes] logits of every view -> [B, classes]: the mean softmax, or the
    mean logits (GDT's eval_video.py). They can rank classes differently: a view that is
    very sure counts for more in the logits."""
    return (logits.softmax(-1) if aggregate == "softmax" else logits).mean((1, 2))


@torch.no_grad()
def predict(method, loader, device: torch.device, size: int, crops: int, label_ids: np.ndarray,
            chunk: int = 32, aggregate: str = "softmax") -> dict:
    """Per test sample: key, label, mean score over its views (``probs``: the softmax, or
    with ``aggregate="logits"`` the raw logits, as GDT's eval_video.py averages), and the
    number of its clips whose centre crop is classified right."""
    if aggregate not in ("softmax", "logits"):
        raise ValueError(f"aggregate: softmax or logits, got {aggregate!r}")
    was_training = method.training
    method.eval()
    keys, labels, probs, hits, clips = [], [], [], [], []
    for batch in device_batches(loader, device):
        views = spatial_crops(batch["video"], size, crops)  # [B, P, X, C, T, S, S]
        b, p, x = views.shape[:3]
        flat = views.flatten(0, 2)
        logits = torch.cat([method.logits(flat[i:i + chunk]) for i in range(0, len(flat), chunk)])
        logits = logits.float().view(b, p, x, -1)
        label = torch.as_tensor(label_ids[batch["label"].cpu().numpy()], device=logits.device)
        keys.extend(batch["key"])
        labels.append(label.cpu().numpy())
        probs.append(view_scores(logits, aggregate).cpu().numpy())
        hits.append((logits[:, :, x // 2].argmax(-1) == label[:, None]).sum(1).cpu().numpy())
        clips.append(np.full(b, p))
    method.train(was_training)
    n_cls = method.head.out_features
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    return {"keys": keys, "labels": cat(labels, (0,)).astype(np.int64), "probs": cat(probs, (0, n_cls)),
            "hits": cat(hits, (0,)).astype(np.int64), "clips": cat(clips, (0,)).astype(np.int64)}


def gather(part: dict) -> dict:
    """Every rank's predictions, concatenated (a no-op on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return part
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, part)
    return {"keys": [k for p in parts for k in p["keys"]],
            **{name: np.concatenate([p[name] for p in parts]) for name in ("labels", "probs", "hits", "clips")}}


def accuracies(pred: dict) -> dict:
    """Video-level top-1 (softmax averaged over every view of every sample of a video)
    and clip-level top-1 (each clip's centre crop on its own)."""
    vids = np.asarray([video_of(k) for k in pred["keys"]], dtype=str)
    names, inverse = np.unique(vids, return_inverse=True)
    summed = np.zeros((len(names), pred["probs"].shape[1]))
    np.add.at(summed, inverse, pred["probs"] * pred["clips"][:, None])  # every view weighs the same
    truth = np.zeros(len(names), np.int64)
    truth[inverse] = pred["labels"]
    return {"video_top1": float((summed.argmax(1) == truth).mean()) if len(names) else float("nan"),
            "clip_top1": float(pred["hits"].sum() / max(pred["clips"].sum(), 1)),
            "n_test_videos": int(len(names)), "n_test_samples": int(len(vids)),
            "n_test_clips": int(pred["clips"].sum())}
