"""GDT's views beside the official dataset code (fixture: tests/parity/README.md, "GDT
views"; the comparison: docs/gdt_views.md).

The fixture holds which source frames and which audio samples the official decoder takes
for a clip of two real videos (30 and 25 fps). With ``gdt_k400``'s loader settings the
project takes the same frames (on a 30 fps shard), starts its audio window on the same
sample, reaches the same last clip, draws the two time shifts independently as the
official dataset does, and crops as the official short-side jitter does.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import CONFIGS, load_config
from pipeline.loader.sample import audio_window_start, clip_starts
from pipeline.loader.video_transforms import short_side_params
from pipeline.train.config import TrainConfig

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def official():
    return json.loads((FIX / "gdt_views.json").read_text())


@pytest.fixture(scope="module")
def loader():
    return load_config(TrainConfig, [CONFIGS / "gdt_k400.yaml"], ["out=o"]).loader


def _span(clip) -> int:
    return (clip.frames - 1) * clip.stride + 1


def test_same_frames_and_audio_start_on_a_30fps_video(official, loader):
    clips = [c for c in official["clips"] if c["fps"] == 30.0]
    assert len(clips) >= 5
    span, rate = _span(loader.clip), 30.0
    for c in clips:
        start = c["source_frames"][0]
        ours = [start + k * loader.clip.stride for k in range(loader.clip.frames)]
        assert ours == c["source_frames"], c["time_index"]
        t0 = audio_window_start(start, span, rate, loader.audio.seconds)
        assert int(round(t0 * c["audio_rate"])) == c["audio_start_sample"], c["time_index"]
        assert int(round(loader.audio.seconds * loader.audio.rate)) == c["audio_samples"]
    # the official last clip (time index 1000) ends on the video's last frame: our last start
    last = max(c["source_frames"][0] for c in clips)
    n = clips[0]["frames_in_file"]
    rng = np.random.default_rng(0)
    starts = [s for _ in range(300) for s in clip_starts(n, span, 2, 0, rng)]
    assert min(starts) == 0 and max(starts) == last == n - span


def test_a_25fps_video_gives_one_second_and_the_audio_of_its_first_frame(official):
    """Off 30 fps the official decoder repeats source frames (index rounding) to make 30;
    the project's shards are re-encoded at 30 fps. Both cover 1 s, audio from the first frame."""
    clips = [c for c in official["clips"] if c["fps"] == 25.0]
    assert clips
    for c in clips:
        idx = c["source_frames"]
        assert len(idx) == 30 and (idx[-1] - idx[0] + 1) / c["fps"] == 1.0
        assert len(set(idx)) == 25  # 5 repeated frames
        assert c["audio_start_sample"] == int(round(c["first_frame_time"] * c["audio_rate"]))


def test_time_shifts_are_independent_uniform_draws(loader):
    """Official: two time indices drawn independently from 0..1000 (no minimum distance).
    With min_shift 0 our two starts are independent uniform draws over the same starts:
    E|s1 - s2| = R (R + 2) / (3 (R + 1)) and P(s1 == s2) = 1 / (R + 1)."""
    assert loader.clip.min_shift == 0.0 and loader.clip.positions == 2 and loader.clip.reverse
    n, span = 300, _span(loader.clip)  # a 10 s K400 clip
    room = n - span
    rng = np.random.default_rng(1)
    pairs = np.array([clip_starts(n, span, 2, int(round(loader.clip.min_shift * 30)), rng) for _ in range(20000)])
    d = np.abs(pairs[:, 0] - pairs[:, 1])
    assert abs(d.mean() / (room * (room + 2) / (3 * (room + 1))) - 1) < 0.03
    assert 0 < (d == 0).sum() < 3 * 20000 / (room + 1)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 0.03


def test_crops_follow_the_official_short_side_jitter(loader):
    """Official: short side to S = round(U(128, 160)), a 112 crop: in a frame of short side
    h the crop is a square of side 112 h / S, anywhere in the frame."""
    v = loader.video
    assert tuple(v.short_side) == (128.0, 160.0) and v.size == 112 and v.flip == 0.5
    assert tuple(v.mean) == (0.45,) * 3 and tuple(v.std) == (0.225,) * 3
    rng = np.random.default_rng(2)
    for h, w in ((160, 213), (160, 284), (128, 171)):
        got = [short_side_params(h, w, v.size, *v.short_side, rng) for _ in range(3000)]
        sides = np.array([g[2] for g in got])
        assert all(g[2] == g[3] for g in got)
        assert sides.min() == round(112 * h / 160) and sides.max() == round(112 * h / 128)
        assert max(g[0] + g[2] for g in got) == h and max(g[1] + g[3] for g in got) == w
        assert min(g[0] for g in got) == 0 and min(g[1] for g in got) == 0
