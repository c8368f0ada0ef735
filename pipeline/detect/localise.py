"""The trained AV model (from the engine's run folder) and the pseudo labels made with it:
one box per frame from its heatmap, the frame's cluster as the box's class."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from pipeline.config import load_config
from pipeline.detect.frames import FrameSet
from pipeline.detect.pseudo_boxes import heatmap_boxes
from pipeline.errors import InputError
from pipeline.io.atomic import atomic_open
from pipeline.train.config import TrainConfig
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method
from pipeline.train.methods.avloc import AVLocMethod


def load_av_model(run: Path) -> tuple[AVLocMethod, TrainConfig]:
    """The AV model a ``method=avloc`` engine run exported (``final/method.safetensors``)."""
    cfg_path, weights = run / "config.yaml", final_weights(run)
    if not cfg_path.is_file() or not weights.is_file():
        raise InputError(f"{run}: no config.yaml/final/method.safetensors of a finished AV run "
                         "(run the detect stage with the 'av' step first)")
    cfg = load_config(TrainConfig, [cfg_path])
    if cfg.method != "avloc":
        raise InputError(f"{cfg_path}: method is {cfg.method!r}, the detect stage needs avloc")
    model = build_method(cfg, "avloc")
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), cfg


def random_av_model(cfg: TrainConfig) -> AVLocMethod:
    """The same architecture at its initialisation (the engine's seed): the baseline row."""
    torch.manual_seed(cfg.seed)
    return build_method(cfg, "avloc").eval()


def frame_boxes(frames: FrameSet, name: str, beta: float, max_boxes: int) -> list[np.ndarray]:
    """Pseudo boxes [m, 4] of every frame from model ``name``'s heatmaps."""
    return heatmap_boxes(frames.av[name]["heat"], frames.size, beta, max_boxes)


def write_pseudo_labels(path: Path, frames: FrameSet, name: str, boxes: list[np.ndarray]) -> int:
    """pseudo_labels.jsonl: one row per box (key, frame, start, box, cluster, score)."""
    out = frames.av[name]
    heat_max = out["heat"].flatten(1).amax(1)
    n = 0
    with atomic_open(path) as fh:
        for i, bs in enumerate(boxes):
            for b in bs:
                fh.write(json.dumps({"key": frames.key[i], "frame": int(frames.frame[i]),
                                     "start": round(float(frames.start[i]), 4),
                                     "box": [round(float(v), 5) for v in b],
                                     "cluster": int(out["cluster"][i]),
                                     "score": round(float(heat_max[i]), 5)}) + "\n")
                n += 1
    return n


def read_pseudo_labels(path: Path, frames: FrameSet) -> tuple[list[np.ndarray], list[int]]:
    """Boxes and cluster of every frame of ``frames`` from pseudo_labels.jsonl (frames it
    does not list get no box: background only)."""
    if not path.is_file():
        raise InputError(f"{path}: missing (run the detect stage with the 'pseudo' step first)")
    rows: dict[tuple[str, int], list[dict]] = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            try:
                r = json.loads(line)
                rows.setdefault((r["key"], int(r["frame"])), []).append(r)
            except (ValueError, KeyError) as err:
                raise InputError(f"{path}:{n}: not a pseudo-label row ({err})") from None
    boxes, clusters = [], []
    for k, f in zip(frames.key, frames.frame.tolist()):
        got = rows.get((k, f), [])
        boxes.append(np.asarray([r["box"] for r in got], np.float32).reshape(-1, 4))
        clusters.append(got[0]["cluster"] if got else 0)
    if not any(len(b) for b in boxes):
        raise InputError(f"{path}: no row matches the frames of the training shards")
    return boxes, clusters
