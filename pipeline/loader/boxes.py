"""Ground-truth boxes of a shard sample (``boxes`` in its JSON: [[t, x0, y0, x1, y1], ...]
with normalised corners) matched to the frames a clip takes."""
from __future__ import annotations

import numpy as np


def box_table(meta_boxes) -> np.ndarray | None:
    """A sample's boxes as an array sorted by time, or None when it has none."""
    if not meta_boxes:
        return None
    arr = np.asarray(meta_boxes, np.float64)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def frame_boxes(table: np.ndarray, frame_idx: list[int], fps: float) -> np.ndarray:
    """Per clip frame, the box of ``table`` (``box_table``) whose time is nearest, if
    within 0.75 frame, else NaN: float32 [T, 4]."""
    t = np.asarray(frame_idx, np.float64) / fps
    after = np.minimum(np.searchsorted(table[:, 0], t), len(table) - 1)  # first time >= t
    before = np.maximum(after - 1, 0)
    j = np.where(np.abs(table[before, 0] - t) <= np.abs(table[after, 0] - t), before, after)
    out = table[j, 1:5].astype(np.float32)
    out[np.abs(table[j, 0] - t) > 0.75 / fps] = np.nan
    return out
