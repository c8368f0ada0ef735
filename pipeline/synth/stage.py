"""``python -m pipeline synth``: the labelled synthetic audio-visual corpus.

Real H.264 + AAC mp4 files written with PyAV, a ``manifest.jsonl`` (path, label, caption,
per-frame boxes of the sounding object) and ``classes.json``. It is the embedded default
of the demo and the learning checks, and the ground truth for detection.

``difficulty=hard`` (the default) makes a class's sound its rhythm only, under per-video
pitch, timbre, loudness, room and noise, with quieter rhythms of other classes
(``pipeline.synth.hard``): an untrained audio network is near chance on it, so the demo's
audio numbers can show learning. ``difficulty=easy`` is the earlier corpus (a fixed pitch,
timbre and rhythm per class), kept for tests that rely on it; its videos are unchanged.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.config import MISSING, ConfigError, save_config
from pipeline.io.atomic import atomic_open, write_json
from pipeline.io.folder_lock import hold
from pipeline.synth.mp4 import write_mp4
from pipeline.synth.classes import SynthClass, caption, make_classes
from pipeline.synth.hard import render_hard_audio
from pipeline.synth.render import (ObjectTrack, background, bouncing_track, mask_bbox,
                                        paste, render_audio, sprite, envelope, visible_box,
                                        rim_mask, sounding_look)

log = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    out: str = field(default=MISSING, metadata={"help": "output folder (videos/, manifest.jsonl, classes.json)"})
    n_videos: int = field(default=512, metadata={"help": "number of videos", "min": 1})
    n_classes: int = field(default=10, metadata={"help": "number of classes (2..64)", "min": 2, "max": 64})
    seed: int = field(default=0, metadata={"help": "random seed; classes do not depend on it", "min": 0})
    seconds: float = field(default=4.0, metadata={"help": "length of each video", "above": 0})
    size: int = field(default=128, metadata={"help": "frame width and height in pixels", "min": 16})
    fps: int = field(default=25, metadata={"help": "frames per second", "min": 1})
    audio_rate: int = field(default=16000, metadata={"help": "audio sample rate, Hz", "min": 8000, "max": 96000})
    max_objects: int = field(default=3, metadata={"help": "1..max objects per video; one sounds, the rest are silent distractors", "min": 1})
    object_size: tuple[int, int] = field(default=(26, 48), metadata={"help": "object size range in pixels", "min": 4})
    speed: tuple[float, float] = field(default=(0.3, 2.0), metadata={"help": "object speed range, pixels per frame", "min": 0})
    offscreen_fraction: float = field(default=0.15, metadata={"help": "fraction of videos whose sounding object may be half off-screen", "min": 0, "max": 1})
    snr_db: tuple[float, float] = field(default=(0.0, 15.0), metadata={"help": "signal-to-noise ratio range of the audio, dB"})
    difficulty: str = field(default="hard", metadata={"help": "hard: a class's sound is a rhythm under random pitch, timbre, loudness, room and noise, with quieter sounds of other classes (random-init audio kNN near chance); easy: a fixed pitch, timbre and rhythm per class (a random-init network already separates it)", "choices": ["hard", "easy"]})
    sound_distractors: tuple[int, int] = field(default=(1, 2), metadata={"help": "difficulty=hard: range of other classes' rhythms heard quietly in each video", "min": 0})
    distractor_db: tuple[float, float] = field(default=(-20.0, -10.0), metadata={"help": "difficulty=hard: level of the distracting sounds relative to the sounding object's, dB", "max": 0})
    workers: int = field(default=0, metadata={"help": "processes (0 = one per CPU core)", "min": 0})

    def check(self) -> None:
        if self.seconds * self.fps < 1:
            raise ConfigError(f"{self.seconds} s at fps={self.fps} is not one frame", key="seconds")
        lo, hi = self.object_size
        if not lo <= hi <= 0.8 * self.size:
            raise ConfigError(f"{list(self.object_size)} does not fit size={self.size}: need min <= max "
                              f"<= 0.8 * size, e.g. object_size=[{max(4, self.size // 5)},{self.size // 3}]",
                              key="object_size")
        for key in ("speed", "snr_db", "sound_distractors", "distractor_db"):
            if getattr(self, key)[0] > getattr(self, key)[1]:
                raise ConfigError(f"{list(getattr(self, key))}: need min <= max", key=key)


def _video_spec(cfg: SynthConfig, classes: list[SynthClass], index: int) -> dict:
    """Everything random about one video, drawn from its own seeded generator."""
    rng = np.random.default_rng([cfg.seed, index])
    label = int(rng.integers(len(classes)))
    n_obj = int(rng.integers(1, cfg.max_objects + 1))
    others = [c for c in range(len(classes)) if c != label]
    distractors = [int(c) for c in rng.choice(others, size=min(n_obj - 1, len(others)), replace=False)]
    spec = {"index": index, "label": label, "distractors": distractors,
            "offscreen": bool(rng.random() < cfg.offscreen_fraction),
            "phase": float(rng.random()), "snr_db": float(rng.uniform(*cfg.snr_db)),
            "caption_variant": int(rng.integers(4)), "rng_seed": int(rng.integers(2**31))}
    if cfg.difficulty == "hard":  # drawn after the easy corpus's draws: easy videos stay as they were
        n = int(rng.integers(cfg.sound_distractors[0], cfg.sound_distractors[1] + 1))
        spec["heard"] = [int(c) for c in rng.choice(others, size=min(n, len(others)), replace=False)]
    return spec


def _render(cfg: SynthConfig, classes: list[SynthClass], spec: dict):
    rng = np.random.default_rng(spec["rng_seed"])
    n_frames = int(round(cfg.seconds * cfg.fps))
    h = w = cfg.size
    frames = background(n_frames, h, w, rng)
    tracks, sprites = [], []
    # distractors first so the sounding object is drawn on top (its box is its visible part)
    for cls_idx, sounding in [(c, False) for c in spec["distractors"]] + [(spec["label"], True)]:
        size = int(rng.integers(cfg.object_size[0], cfg.object_size[1] + 1))
        rgb, alpha = sprite(classes[cls_idx], size)
        xy = bouncing_track(n_frames, size, h, w, float(rng.uniform(*cfg.speed)),
                            spec["offscreen"] and sounding, rng)
        tracks.append(ObjectTrack(classes[cls_idx], size, xy, sounding, mask_bbox(alpha)))
        sprites.append((rgb, alpha))
    t = np.arange(n_frames) / cfg.fps
    label_cls = classes[spec["label"]]
    n_samples = int(round(cfg.seconds * cfg.audio_rate))
    if cfg.difficulty == "hard":
        audio, wave_env = render_hard_audio(spec["label"], spec["heard"], n_samples, cfg.audio_rate,
                                            spec["phase"], spec["snr_db"], cfg.distractor_db, rng)
        # the glow follows the sound's envelope over each frame's duration
        edges = np.minimum((np.arange(n_frames + 1) / cfg.fps * cfg.audio_rate).astype(int), n_samples)
        env = np.array([wave_env[a:max(b, a + 1)].max() if a < n_samples else 0.0
                        for a, b in zip(edges[:-1], edges[1:])])
    else:
        env = envelope(label_cls.rhythm, t, spec["phase"])
    glow = 0.55 + 0.45 * env
    rim_strength = 0.45 + 0.4 * env  # never off: a steady sound glows steadily
    band = rim_mask(sprites[-1][1])  # the sounding object is the last track
    for f in range(n_frames):
        for tr, (rgb, alpha) in zip(tracks, sprites):
            if tr.sounding:
                rgb = sounding_look(rgb, alpha, band, glow[f], rim_strength[f])
            paste(frames[f], rgb, alpha, *tr.xy[f])
    video = (np.clip(frames, 0, 1) * 255).astype(np.uint8)
    boxes = []
    for f in range(n_frames):
        b = visible_box(tracks[-1], f, h, w)
        if b is not None:
            boxes.append([round(f / cfg.fps, 4)] + [round(v, 4) for v in b])
    if cfg.difficulty == "easy":
        audio = render_audio(label_cls, n_samples, cfg.audio_rate, spec["phase"], spec["snr_db"], rng)
    return video, audio, boxes


def _make_one(args) -> dict:
    cfg, classes, spec = args
    video, audio, boxes = _render(cfg, classes, spec)
    rel = f"videos/{spec['index']:06d}.mp4"
    write_mp4(Path(cfg.out) / rel, video, cfg.fps, audio, cfg.audio_rate)
    cls = classes[spec["label"]]
    return {"path": rel, "label": cls.name, "label_id": cls.index,
            "caption": caption(cls, spec["caption_variant"]),
            "distractors": [classes[d].name for d in spec["distractors"]],
            **({"heard": [classes[d].name for d in spec["heard"]]} if "heard" in spec else {}),
            "offscreen": spec["offscreen"], "snr_db": round(spec["snr_db"], 2),
            "fps": cfg.fps, "n_frames": len(video), "boxes": boxes}


def run(cfg: SynthConfig) -> dict:
    with hold(cfg.out, "synth"):
        return _run(cfg)


def _run(cfg: SynthConfig) -> dict:
    out = Path(cfg.out)
    classes = make_classes(cfg.n_classes, cfg.difficulty)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    specs = [_video_spec(cfg, classes, i) for i in range(cfg.n_videos)]
    workers = cfg.workers or os.cpu_count() or 1
    start = time.time()
    jobs = [(cfg, classes, s) for s in specs]
    if workers == 1:
        rows = [_make_one(j) for j in tqdm(jobs, desc="synth", unit="video")]
    else:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(tqdm(pool.map(_make_one, jobs, chunksize=4), total=len(jobs),
                             desc="synth", unit="video"))
    with atomic_open(out / "manifest.jsonl") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    write_json(out / "classes.json", [c.to_json() for c in classes])
    seconds = time.time() - start
    log.info("synth: %d videos, %d classes in %.1f s -> %s", len(rows), len(classes), seconds, out)
    return {"videos": len(rows), "classes": len(classes), "seconds": seconds,
            "manifest": str(out / "manifest.jsonl")}
