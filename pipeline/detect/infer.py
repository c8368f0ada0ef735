"""Detection on images or video files with the trained detector alone: no audio.

Frames are prepared as the training frames were (centre square crop, resized to the
detector's frame size); cluster ids are named with the naming the eval step saved
(Hungarian on the labelled set) when it exists.
"""
from __future__ import annotations

import json
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from pipeline.loader.video_transforms import centre_params
from pipeline.detect.detector import load_detector, predict
from pipeline.errors import InputError
from pipeline.shard.probe import open_local


class Detector:
    """``Detector(run_dir)(frames)``: uint8 [n, H, W, 3] frames -> detections per frame with
    normalised boxes, scores, cluster ids and class names."""

    def __init__(self, run: str | Path):
        run = Path(run)
        self.model, meta = load_detector(run / "detector")
        self.size = int(meta["frame_size"])
        naming = run / "detector" / "naming.json"
        self.names: dict[int, str] = {}
        if naming.is_file():
            self.names = {int(k): v for k, v in json.loads(naming.read_text())["hungarian"].items()}

    def prepare(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        top, left, ch, cw = centre_params(*x.shape[-2:])
        return TF.resized_crop(x, top, left, ch, cw, [self.size, self.size], antialias=True)

    def __call__(self, frames: np.ndarray, score_min: float = 0.3) -> list[list[dict]]:
        dets = predict(self.model, self.prepare(frames))
        out = []
        for d in dets:
            keep = d["scores"] >= score_min
            out.append([{"box": [round(float(v) / self.size, 4) for v in b], "score": round(float(s), 4),
                         "cluster": int(c), "name": self.names.get(int(c), f"cluster {int(c)}")}
                        for b, s, c in zip(d["boxes"][keep], d["scores"][keep], d["labels"][keep])])
        return out

    def video(self, path: str | Path, every: int = 1, score_min: float = 0.3) -> list[dict]:
        """Detections on every ``every``-th frame of a video file: [{frame, t, detections}]."""
        frames, times = [], []
        rgb = VideoReformatter()  # one swscale context for all frames (to_ndarray makes one per frame)
        try:
            with open_local(str(path)) as container:
                stream = container.streams.video[0]
                for i, frame in enumerate(container.decode(stream)):
                    if i % every == 0:
                        frames.append(rgb.reformat(frame, format="rgb24").to_ndarray())
                        times.append(round(float(frame.time or 0.0), 4))
        except av.error.FFmpegError as err:
            raise InputError(f"{path}: cannot decode video: {err}") from None
        if not frames:
            raise InputError(f"{path}: no video frames")
        dets = self(np.stack(frames), score_min)
        return [{"frame": i * every, "t": t, "detections": d} for i, (t, d) in enumerate(zip(times, dets))]
