"""What the evaluation keeps of each frame it streams past: small per-frame arrays only.

Per frame: the ground-truth box and class (18 bytes), per model its cluster and heatmap
boxes, the detector's detections (at most ``detections_per_img``, 22 bytes each), and
for labelled frames the cluster the detector's ROI head gives the true box. The images
are not kept, except those of the few frames drawn for the pictures (a seeded reservoir
over the clips, so the draw is uniform over the set in one pass).
"""
from __future__ import annotations

import numpy as np
import torch

BYTES_PER_DETECTION = 16 + 4 + 2  # box, score, label


class Column:
    """A growing 1-D or row array, appended a batch at a time."""

    def __init__(self, dtype):
        self.dtype, self.parts = dtype, []

    def extend(self, values) -> None:
        v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        self.parts.append(v.astype(self.dtype, copy=False))

    def array(self) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.zeros(0, self.dtype)


class Detections:
    """Per-frame detections ({boxes [m, 4], scores [m], labels [m]}) in flat arrays:
    appended a batch at a time, read back per frame once ``finish`` has run."""

    def __init__(self):
        self.boxes, self.scores, self.labels = Column(np.float32), Column(np.float32), Column(np.int16)
        self.counts = Column(np.int64)
        self.offsets = np.zeros(1, np.int64)

    def extend(self, dets: list[dict]) -> None:
        if not dets:
            return
        self.boxes.extend(torch.cat([d["boxes"].detach().float().reshape(-1, 4) for d in dets]))
        self.scores.extend(torch.cat([d["scores"].detach().float().reshape(-1) for d in dets]))
        self.labels.extend(torch.cat([d["labels"].detach().reshape(-1) for d in dets]))
        self.counts.extend([len(d["scores"]) for d in dets])

    def finish(self) -> "Detections":
        self.offsets = np.concatenate([[0], np.cumsum(self.counts.array())])
        return self

    def __len__(self) -> int:
        """Frames appended so far (also while streaming, before ``finish``: the evaluation
        numbers its pictures by it)."""
        return len(self.counts.array())

    def __getitem__(self, i: int) -> dict:
        s, e = self.offsets[i], self.offsets[i + 1]
        return {"boxes": torch.from_numpy(self.boxes.array().reshape(-1, 4)[s:e]),
                "scores": torch.from_numpy(self.scores.array()[s:e]),
                "labels": torch.from_numpy(self.labels.array()[s:e].astype(np.int64))}

    def all(self) -> list[dict]:
        return [self[i] for i in range(len(self))]


class Reservoir:
    """A uniform sample of ``n`` items of a stream seen once (Algorithm R), seeded."""

    def __init__(self, n: int, seed: int):
        self.n, self.seen, self.items = n, 0, []
        self.rng = np.random.default_rng(seed)

    def offer(self) -> int:
        """The slot the next item takes, or -1 if it is not kept."""
        self.seen += 1
        if len(self.items) < self.n:
            self.items.append(None)
            return len(self.items) - 1
        j = int(self.rng.integers(self.seen))
        return j if j < self.n else -1
