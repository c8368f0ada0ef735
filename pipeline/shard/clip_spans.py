"""Which frames of a video become which clips: the clip policy as one pure function.

Clips start every ``stride`` frames and last ``clip`` frames. The tail after the last
full clip is kept as a shorter clip when it has at least ``min_frames`` frames and adds
frames no earlier clip covers; so with overlapping clips only the longest tail survives.
"""
from __future__ import annotations

import math


def clip_spans(n_frames: int, clip: int, stride: int, min_frames: int) -> list[tuple[int, int]]:
    """(start frame, frame count) of every clip of a video of ``n_frames`` frames."""
    if clip < 1 or stride < 1:
        raise ValueError(f"clip ({clip}) and stride ({stride}) must be >= 1 frame")
    spans: list[tuple[int, int]] = []
    covered = 0
    for start in range(0, n_frames, stride):
        length = min(clip, n_frames - start)
        if length == clip:
            spans.append((start, length))
            covered = start + length
            continue
        if length >= max(min_frames, 1) and n_frames > covered:
            spans.append((start, length))
        break
    return spans


def frames_of(seconds: float, fps: float) -> int:
    """Seconds -> whole frames, rounding 3.9999999 up to 4 rather than down to 3."""
    return max(int(math.floor(seconds * fps + 1e-6)), 0)
