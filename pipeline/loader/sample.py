"""One shard sample (raw tar members) -> what a loader worker ships for it: uint8 video
crops, int16 audio windows and the augmentation parameters ``DeviceAugment`` applies.

A *view* is a clip position (time shift), an augmentation copy and a direction (time
reversal). GDT uses 2 positions x reversed; SimCLR 2 copies; a plain run 1 view. The
worker makes only the *source* views (position x copy): a reversed view is its source
played backwards, which the device does for free, so it never crosses the process
boundary. Only the frames and the audio window of the chosen clips are decoded, and
only the modalities asked for (``modalities``): an audio-only corpus (ESC-50) has no
video to decode, a silent one (much of HMDB51) no audio.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.io.wav import read_pcm_window, wav_layout
from pipeline.loader import tokenizer
from pipeline.loader.audio_features import feature_shape
from pipeline.loader.audio_transforms import AudioConfig, draw_gain, draw_spec_masks
from pipeline.loader.boxes import box_table, frame_boxes
from pipeline.loader.decode import get_decoder
from pipeline.loader.video_transforms import VideoAugConfig, boxes_of, draw_clip, resize_crop

MODALITIES = ("video", "audio")
AUDIO_GRID = 100  # audio-only clips are placed on a 10 ms grid (the log-mel hop)


@dataclass
class ClipConfig:
    frames: int = field(default=8, metadata={"help": "frames per clip (T)", "min": 1})
    stride: int = field(default=2, metadata={"help": "take every stride-th frame", "min": 1})
    positions: int = field(default=1, metadata={"help": "clip positions per video (2 = GDT time shift)", "min": 1})
    min_shift: float = field(default=0.5, metadata={"help": "minimum time between two positions, seconds (when the video allows)", "min": 0})
    copies: int = field(default=1, metadata={"help": "independently augmented copies per position (2 = SimCLR)", "min": 1})
    reverse: bool = field(default=False, metadata={"help": "add a time-reversed copy of every view (GDT time reversal)"})
    text_len: int = field(default=64, metadata={"help": "caption length in byte tokens", "min": 1})
    backend: str = field(default="auto", metadata={
        "help": "video decoder: auto | pyav | torchcodec | decord (identical frames; auto times the installed ones on the run's shards at start-up and keeps the fastest, recorded in the run's config.yaml)",
        "choices": ["auto", "torchcodec", "decord", "pyav"]})
    # Off by default: with it, PyAV's pixels differ from the other decoders' (~2 of 255), so
    # backend=auto, which picks by speed, could give two runs of one recipe different inputs;
    # off, the decoder choice changes speed only and reruns reproduce (tests/slurm).
    crop_in_decoder: bool = field(default=False, metadata={
        "help": "PyAV: crop, resize and mirror in the decoder's own RGB conversion (one swscale pass over "
                "the crop, 18 % faster at GDT's 2 x 30 frames, no gain at 8; its pixels differ from "
                "torchvision's resize by ~2 levels of 255 on average, decode_crop.py), so pin "
                "backend=pyav with it; false (default), and the other backends: full-frame RGB, then "
                "torchvision's antialiased resize (identical across backends)"})
    decode_device: str = field(default="cpu", metadata={
        "help": "cpu | cuda (torchcodec on the GPU, for high-resolution sources; decodes in the training process, needs workers=0)",
        "choices": ["cpu", "cuda"]})


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


def audio_window_start(start: int, span: int, rate: float, seconds: float) -> float:
    """Second at which a clip's audio window begins: the window is centred on the clip, so
    when it is as long as the clip (1 s beside 30 frames at 30 fps) it starts at the first
    frame, as the official GDT and SeLaVi decoders align it (docs/gdt_views.md)."""
    return (start + span / 2) / rate - seconds / 2


def _rows(frames: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """``frames[rows]``: a view when the rows are evenly spaced (a clip always is, unless two
    positions' frames interleave), else ``index_select``. Not list indexing: it gathers
    uint8 element by element, 2.0 ms for one 30-frame 128p view (one thread; index_select
    0.1 ms, a slice nothing), which was most of GDT's per-sample cost beside decoding."""
    step = rows[1] - rows[0] if len(rows) > 1 else 1
    if step > 0 and rows == list(range(rows[0], rows[-1] + 1, step)):
        return frames[rows[0]:rows[-1] + 1:step]
    return frames.index_select(0, torch.tensor(rows))


class SampleDecoder:
    """Callable filling a sample's rows of the batch arrays (``shapes``) and returning its
    small per-sample fields (numpy), or raising on bad data."""

    def __init__(self, clip: ClipConfig, video: VideoAugConfig, audio: AudioConfig, train: bool,
                 modalities: tuple[str, ...] = MODALITIES):
        self.clip, self.video, self.audio, self.train = clip, video, audio, train
        self.modalities = tuple(modalities)
        self.sources = [(p, c) for p in range(clip.positions) for c in range(clip.copies)]
        self.backend = clip.backend
        self.decode_frames = get_decoder(clip.backend, clip.decode_device) if "video" in self.modalities else None
        self.crops_in_decoder = bool(clip.crop_in_decoder and getattr(self.decode_frames, "crops", False))
        self.wave_len = int(round(audio.seconds * audio.rate))
        self.spec_shape = feature_shape(audio)

    @property
    def shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per-sample shape and dtype of the arrays a batch carries in shared memory."""
        p, out = len(self.sources), {}
        if "video" in self.modalities:
            out["video"] = ((p, self.clip.frames, self.video.size, self.video.size, 3), torch.uint8)
        if "audio" in self.modalities:
            out["wave"] = ((p, self.wave_len), torch.int16)
        return out

    def _timing(self, raw: dict, meta: dict, rng) -> tuple[list[int], float, int]:
        """(clip start per position in grid steps, grid steps per second, span in steps):
        video frames when there is video, a 10 ms grid over the audio otherwise."""
        if "video" in self.modalities:
            if "mp4" not in raw:
                raise ValueError("no mp4 member (an audio-only sample? load it with loader.modalities=[audio])")
            rate, n = float(meta["fps"]), int(meta["n_frames"])
            span = (self.clip.frames - 1) * self.clip.stride + 1
        else:
            if "wav" not in raw:
                raise ValueError("no wav member, and loader.modalities=[audio]")
            sr, _, _, _, frames = wav_layout(raw["wav"])
            rate, n = float(AUDIO_GRID), int(float(meta.get("duration", frames / sr)) * AUDIO_GRID)
            span = int(round(self.audio.seconds * AUDIO_GRID))
        starts = clip_starts(n, span, self.clip.positions, int(round(self.clip.min_shift * rate)), rng)
        return starts, rate, span

    def _crop_in_decoder(self, mp4: bytes, clips: list[list[int]], draw, outs) -> tuple[list, tuple[int, int]]:
        """PyAV crops, resizes and mirrors each view in its RGB conversion (decode_crop.py)."""
        drawn: list = []

        def plan(h: int, w: int) -> list:
            drawn.extend(draw(h, w))
            return drawn
        hw = self.decode_frames.crop_views(mp4, clips, plan, outs)
        return drawn, hw

    def _crop_after(self, mp4: bytes, clips: list[list[int]], draw, outs) -> tuple[list, tuple[int, int]]:
        """Full-frame RGB from the decoder, then torchvision's crop + resize per view."""
        wanted = sorted({i for idx in clips for i in idx})
        decoded = self.decode_frames(mp4, wanted)
        h, w = decoded.shape[1:3]
        draws = draw(h, w)
        by_index = {f: i for i, f in enumerate(wanted)}
        for idx, d, o in zip(clips, draws, outs):
            resize_crop(_rows(decoded, [by_index[i] for i in idx]), d, o)
        return draws, (h, w)

    def __call__(self, raw: dict, rng: np.random.Generator | None, out: dict[str, torch.Tensor]) -> dict:
        """``out`` holds this sample's rows of the batch arrays (``shapes``); they receive
        the source views in place: no per-sample stack and no collate copy."""
        meta = json.loads(raw["json"])
        rng = rng if self.train else None
        starts, rate, span = self._timing(raw, meta, rng)
        has_audio = "wav" in raw and bool(meta.get("has_audio", True))
        if "video" not in self.modalities and not has_audio:
            raise ValueError("sample has no audio, and loader.modalities=[audio]")
        fields: dict = {}
        video, audio = "video" in self.modalities, "audio" in self.modalities
        gains, masks = [], []

        def draw(h: int, w: int) -> list:
            """Every view's random draws, in the order they have always been drawn (a
            view's crop, flip, jitter, then its audio gain and masks): the same stream
            of numbers whether the crop is applied by torch or by the decoder."""
            draws = []
            for _ in self.sources:
                if video:
                    draws.append(draw_clip(h, w, self.video, rng))
                if audio:
                    gains.append(1.0 if rng is None else draw_gain(self.audio, rng))
                    masks.append(draw_spec_masks(self.audio, *self.spec_shape, rng))
            return draws

        if video:
            stride, t = self.clip.stride, self.clip.frames
            clips = [[starts[pos] + k * stride for k in range(t)] for pos, _copy in self.sources]
            outs = [out["video"][v] for v in range(len(self.sources))]
            crop = self._crop_in_decoder if self.crops_in_decoder else self._crop_after
            draws, (h, w) = crop(raw["mp4"], clips, draw, outs)
            table = box_table(meta.get("boxes"))
            nan_boxes = np.full((t, 4), np.nan, np.float32)
            boxes = [boxes_of(None if table is None else frame_boxes(table, idx, rate), h, w, d)
                     for idx, d in zip(clips, draws)]
            fields.update(boxes=np.stack([nan_boxes if b is None else b for b in boxes]),
                          jitter=np.stack([d.jitter for d in draws]), jitter_order=np.stack([d.order for d in draws]))
        else:
            draw(0, 0)
        if audio:
            for v, (pos, _copy) in enumerate(self.sources):
                if has_audio:
                    read_pcm_window(raw["wav"], audio_window_start(starts[pos], span, rate, self.audio.seconds),
                                    self.audio.seconds, self.audio.rate, out=out["wave"][v].numpy())
                else:
                    out["wave"][v].zero_()
            # float64, as drawn: the gdt / selavi features scale int16 samples by it in float64,
            # as the official code does (a float32 gain moves SeLaVi's features by ~2e-6)
            fields.update(gain=np.asarray(gains, np.float64), spec_masks=np.stack(masks))
        text = raw.get("txt", b"").decode("utf-8") if raw.get("txt") else ""
        ids, n = tokenizer.encode(text, self.clip.text_len)
        fields.update(key=raw["__key__"], text=ids, text_len=n,
                      label=int(raw["cls"]) if raw.get("cls") else -1, has_audio=has_audio,
                      start=np.asarray([s / rate for s in starts], np.float32))
        return fields
