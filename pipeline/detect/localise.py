"""The trained AV model (from the engine's run folder) and the pseudo labels made with it:
one box per frame from its heatmap, the frame's cluster as the box's class."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.config import load_config
from pipeline.detect.frames import frame_batches
from pipeline.detect.pseudo_boxes import heatmap_boxes
from pipeline.detect.pseudo_labels import SideFileWriter
from pipeline.errors import InputError
from pipeline.loader.loader import ClipLoader
from pipeline.train.method import final_weights
from pipeline.train.methods import build_method
from pipeline.train.methods.avloc import AVLocMethod, RunConfig as AVLocRun


def load_av_model(run: Path) -> tuple[AVLocMethod, AVLocRun]:
    """The AV model a ``method=avloc`` engine run exported (``final/method.safetensors``)."""
    cfg_path, weights = run / "config.yaml", final_weights(run)
    if not cfg_path.is_file() or not weights.is_file():
        raise InputError(f"{run}: no config.yaml/final/method.safetensors of a finished AV run "
                         "(run the detect stage with the 'av' step first)")
    cfg = load_config(AVLocRun, [cfg_path])
    if cfg.method != "avloc":
        raise InputError(f"{cfg_path}: method is {cfg.method!r}, the detect stage needs avloc")
    model = build_method(cfg, "avloc")
    model.load_state_dict(load_file(str(weights)))
    return model.eval(), cfg


def random_av_model(cfg: AVLocRun) -> AVLocMethod:
    """The same architecture at its initialisation (the engine's seed): the baseline row."""
    torch.manual_seed(cfg.seed)
    return build_method(cfg, "avloc").eval()


@torch.no_grad()
def write_pseudo_labels(loader: ClipLoader, model: AVLocMethod, folder: Path, beta: float,
                        max_boxes: int) -> int:
    """One streaming pass: heatmap boxes and the cluster of every frame of the loader's
    shards -> a side file per shard in ``folder``; returns the number of boxes."""
    model.eval()
    writer = SideFileWriter(folder, loader.sources[0])
    size = (loader.cfg.video.size, loader.cfg.video.size)
    for fb in frame_batches(loader, desc="pseudo boxes"):
        out = model.localise(fb.batch)
        boxes = heatmap_boxes(out["heat"], size, beta, max_boxes)
        heat_max = out["heat"].flatten(1).amax(1)
        clip: list[dict] = []
        for i, bs in enumerate(boxes):
            clip.extend({"key": fb.key[i], "frame": int(fb.frame[i]), "start": round(float(fb.start[i]), 4),
                         "box": [round(float(v), 5) for v in b], "cluster": int(out["cluster"][i]),
                         "score": round(float(heat_max[i]), 5)} for b in bs)
            if i + 1 == len(fb) or fb.key[i + 1] != fb.key[i]:  # the clip's last frame
                writer.add_clip(fb.key[i], clip)
                clip = []
    return writer.close()
