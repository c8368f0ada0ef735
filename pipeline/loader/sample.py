"""One shard sample (raw tar members) -> the tensors of its training views.

A *view* is a clip position (time shift), an augmentation copy and a direction (time
reversal). GDT uses 2 positions x reversed; SimCLR 2 copies; a plain run 1 view.
Only the frames and the audio window of the chosen clips are decoded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.io.wav import read_window
from pipeline.loader import tokenizer
from pipeline.loader.audio_transforms import (AudioConfig, LogMel, apply_spec_masks, draw_spec_masks,
                                            jitter_wave)
from pipeline.loader.decode import get_decoder
from pipeline.loader.video_transforms import VideoAugConfig, augment_clip


@dataclass
class ClipConfig:
    frames: int = field(default=8, metadata={"help": "frames per clip (T)", "min": 1})
    stride: int = field(default=2, metadata={"help": "take every stride-th frame", "min": 1})
    positions: int = field(default=1, metadata={"help": "clip positions per video (2 = GDT time shift)", "min": 1})
    min_shift: float = field(default=0.5, metadata={"help": "minimum time between two positions, seconds (when the video allows)", "min": 0})
    copies: int = field(default=1, metadata={"help": "independently augmented copies per position (2 = SimCLR)", "min": 1})
    reverse: bool = field(default=False, metadata={"help": "add a time-reversed copy of every view (GDT time reversal)"})
    text_len: int = field(default=64, metadata={"help": "caption length in byte tokens", "min": 1})
    backend: str = field(default="decord", metadata={"help": "video decoder: decord | pyav"})


def view_layout(cfg: ClipConfig) -> list[tuple[int, int, bool]]:
    """(position, copy, reversed) of each view, in the order of the batch's V axis."""
    dirs = (False, True) if cfg.reverse else (False,)
    return [(p, c, r) for p in range(cfg.positions) for c in range(cfg.copies) for r in dirs]


def clip_starts(n_frames: int, span: int, count: int, min_gap: int,
                rng: np.random.Generator | None) -> list[int]:
    """Start frames of ``count`` clips of ``span`` frames; centred when evaluating."""
    room = max(n_frames - span, 0)
    if rng is None:
        if count == 1:
            return [room // 2]
        return [int(round(room * i / (count - 1))) for i in range(count)]
    first = int(rng.integers(0, room + 1))
    starts = [first]
    for _ in range(count - 1):
        far = [s for s in range(room + 1) if all(abs(s - t) >= min_gap for t in starts)]
        pool = far or [s for s in range(room + 1) if s not in starts] or [first]
        starts.append(int(pool[int(rng.integers(len(pool)))]))
    return starts


def box_table(meta_boxes) -> np.ndarray | None:
    """A sample's boxes [[t, x0, y0, x1, y1], ...] as an array sorted by time, or None."""
    if not meta_boxes:
        return None
    arr = np.asarray(meta_boxes, np.float64)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def frame_boxes(table: np.ndarray, frame_idx: list[int], fps: float) -> torch.Tensor:
    """Per clip frame, the box of ``table`` (``box_table``) whose time is nearest, if
    within 0.75 frame, else NaN."""
    t = np.asarray(frame_idx, np.float64) / fps
    after = np.minimum(np.searchsorted(table[:, 0], t), len(table) - 1)  # first time >= t
    before = np.maximum(after - 1, 0)
    j = np.where(np.abs(table[before, 0] - t) <= np.abs(table[after, 0] - t), before, after)
    out = table[j, 1:5].astype(np.float32)
    out[np.abs(table[j, 0] - t) > 0.75 / fps] = np.nan
    return torch.from_numpy(out)


class SampleDecoder:
    """Callable turning a raw sample dict into a dict of tensors (or raising on bad data)."""

    def __init__(self, clip: ClipConfig, video: VideoAugConfig, audio: AudioConfig, train: bool):
        self.clip, self.video, self.audio, self.train = clip, video, audio, train
        self.decode_frames = get_decoder(clip.backend)
        self.logmel = LogMel(audio)
        self.views = view_layout(clip)
        # audio is computed for the views that are not reversed copies ("sources"); a
        # reversed view is its source's spectrogram played backwards
        self.audio_src = torch.tensor(list(np.cumsum([not r for _, _, r in self.views]) - 1))
        self.audio_rev = torch.tensor([r for _, _, r in self.views])
        n = int(round(audio.seconds * audio.rate))
        self.spec_shape = tuple(self.logmel(torch.zeros(n)).shape[-2:])
        self.no_boxes = torch.full((clip.frames, 4), float("nan"))  # most corpora have none

    @property
    def video_shape(self) -> tuple[int, ...]:
        """[V, C, T, S, S] of one sample's video views."""
        return (len(self.views), 3, self.clip.frames, self.video.size, self.video.size)

    def __call__(self, raw: dict, rng: np.random.Generator | None,
                 video_out: torch.Tensor | None = None) -> dict:
        """``video_out`` ([V, C, T, S, S], e.g. a row of a batch buffer) receives the
        views in place: no per-sample stack and no collate copy of the largest tensor.
        Audio leaves as waveforms and drawn SpecAugment bands ("wave", "spec_masks");
        ``spectrograms`` turns a batch of them into the views' log-mels at once."""
        meta = json.loads(raw["json"])
        fps, n_frames = float(meta["fps"]), int(meta["n_frames"])
        span = (self.clip.frames - 1) * self.clip.stride + 1
        rng = rng if self.train else None
        starts = clip_starts(n_frames, span, self.clip.positions,
                             int(round(self.clip.min_shift * fps)), rng)
        wanted = sorted({s + k * self.clip.stride for s in starts for k in range(self.clip.frames)})
        decoded = self.decode_frames(raw["mp4"], wanted)
        by_index = {f: i for i, f in enumerate(wanted)}
        video = torch.empty(self.video_shape) if video_out is None else video_out
        waves, masks, boxes, table = [], [], [], box_table(meta.get("boxes"))
        has_audio = "wav" in raw and bool(meta.get("has_audio", True))
        for v, (pos, _copy, rev) in enumerate(self.views):
            if rev:  # the reversed view is the previous view flipped: same crop, same jitter
                video[v] = video[v - 1].flip(1)
                boxes.append(boxes[-1].flip(0))
                continue
            idx = [starts[pos] + k * self.clip.stride for k in range(self.clip.frames)]
            rows = [by_index[i] for i in idx]
            # one position (the common case): the decoded frames are the clip, no copy
            frames = torch.from_numpy(decoded if rows == list(range(len(decoded))) else decoded[rows])
            clip_boxes = None if table is None else frame_boxes(table, idx, fps)
            _, b = augment_clip(frames, clip_boxes, self.video, rng, out=video[v])
            boxes.append(self.no_boxes if b is None else b)
            centre = (starts[pos] + span / 2) / fps
            if has_audio:
                wave = read_window(raw["wav"], centre - self.audio.seconds / 2, self.audio.seconds,
                                   self.audio.rate)
            else:
                wave = np.zeros(int(round(self.audio.seconds * self.audio.rate)), np.float32)
            if rng is not None:
                wave = jitter_wave(wave, self.audio, rng)
            waves.append(wave.astype(np.float32, copy=False))
            masks.append(draw_spec_masks(self.audio, *self.spec_shape, rng))
        text = raw.get("txt", b"").decode("utf-8") if raw.get("txt") else ""
        ids, n = tokenizer.encode(text, self.clip.text_len)
        label = int(raw["cls"]) if raw.get("cls") else -1
        return {"key": raw["__key__"], "video": video, "wave": torch.from_numpy(np.stack(waves)),
                "spec_masks": torch.from_numpy(np.stack(masks)),
                "boxes": torch.stack(boxes), "text": ids, "text_len": n, "label": label,
                "has_audio": has_audio, "start": [s / fps for s in starts]}

    def spectrograms(self, waves: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, P, n] and bands [B, P, M, 2] of the samples' source views ->
        log-mels [B, V, 1, n_mels, frames] of all views, reversed ones included."""
        b, p = waves.shape[:2]
        spec = self.logmel(waves.reshape(b * p, -1))
        spec = apply_spec_masks(spec, masks.reshape(b * p, masks.shape[-2], 2), self.audio.freq_masks)
        spec = spec.reshape(b, p, *spec.shape[1:])[:, self.audio_src]
        if self.audio_rev.any():
            spec[:, self.audio_rev] = spec[:, self.audio_rev].flip(-1)
        return spec
