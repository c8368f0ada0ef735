"""``finetune_ucf101``'s train and test views against GDT's official dataset code
(fixture ``finetune_gdt_views.json``, made by ``make_fixtures/finetune_official.py``:
``AVideoDataset.__getitem__`` with ``run_finetune.sh``'s arguments on a 240 x 320 clip
whose pixels encode their row and column). What matches is asserted equal; where the
project differs on purpose (the recipe says why) the difference is measured here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pipeline.config import CONFIGS, load_config
from pipeline.finetune.multiview import spatial_crops
from pipeline.loader.video_transforms import NO_JITTER, crop_clip
from pipeline.train.config import TrainConfig

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "finetune_gdt_views.json").read_text())
H, W = FIXTURE["frame"]


def recipe() -> TrainConfig:
    return load_config(TrainConfig, [CONFIGS / "finetune_ucf101.yaml"], ["out=unused"])


def coded_clip(frames: int = 2) -> torch.Tensor:
    """uint8 [T, H, W, 3]: channel 0 = row, channel 1 = column / 2 (as the fixture's clip)."""
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    rgb = torch.stack([rows, cols // 2, torch.full_like(rows, 128)], -1)
    return rgb[None].expand(frames, H, W, 3).to(torch.uint8).contiguous()


def test_view_counts_sizes_and_pixel_statistics_match():
    cfg = recipe()
    fc, video = cfg.finetune, cfg.loader.video
    assert FIXTURE["test_len_per_video"] == fc.test_clips * fc.test_crops == 30
    assert FIXTURE["train_len_per_video"] == fc.clips_per_video == 10
    assert {tuple(v["shape"][2:]) for v in FIXTURE["train"] + FIXTURE["test"]} == {(video.size, video.size)} == {(128, 128)}
    assert list(fc.pixel_mean) == FIXTURE["mean"] and list(fc.pixel_std) == FIXTURE["std"]
    assert tuple(video.scale) == (0.14, 1.0) and video.ratio == (0.75, 4 / 3)
    # the official random resized crop: every drawn window covers 0.14-1 of the frame (spans
    # read from the coded pixels are a little short of the window: interpolation at its edges)
    areas = [(v["row_span"][1] - v["row_span"][0] + 1) * (v["col_span"][1] - v["col_span"][0] + 2) / (H * W)
             for v in FIXTURE["train"]]
    assert 0.1 < min(areas) and max(areas) <= 1.0
    assert 0 < sum(v["flipped"] for v in FIXTURE["train"]) < len(FIXTURE["train"])  # flip 0.5


def test_colour_jitter_train_only_here_train_and_test_officially():
    video = recipe().loader.video
    assert (video.jitter, video.jitter_prob, video.hue_ratio) == (0.4, 0.8, 0.0)
    assert FIXTURE["train_views_colour_changed_of_50"] > 25  # p = 0.8 officially
    assert FIXTURE["test_views_colour_changed_of_50"] > 25   # the official quirk: test views jittered too
    out = torch.empty(2, 144, 144, 3, dtype=torch.uint8)
    _, factors, _ = crop_clip(coded_clip(), None, video.__class__(size=144), None, out)
    assert np.array_equal(factors, NO_JITTER)  # the project's test views: no jitter


def test_test_crop_windows_differ_by_an_eighth_of_the_width_at_the_sides():
    """Official: the whole frame, short side drawn in 128-160, crops at its left edge,
    centre, right edge. Project: the centre square resized to test_resize (144), crops at
    its left, centre, right. Measured here on the same 240 x 320 frame, in source pixels."""
    cfg = recipe()
    fc, size = cfg.finetune, cfg.loader.video.size
    official = {k: [v for v in FIXTURE["test"] if v["index"] % 3 == k] for k in range(3)}
    assert all(v["col_span"][0] == 0 for v in official[0])            # left crop at the frame's edge
    assert all(v["col_span"][1] >= W - 2 - 1e-3 for v in official[2])  # right crop at the other edge
    short = [round(H * size / (v["row_span"][1] - v["row_span"][0] + 1)) for v in FIXTURE["test"]]
    assert 126 <= min(short) and max(short) <= 162  # the official test short side: drawn in 128-160
    out = torch.empty(2, fc.test_resize, fc.test_resize, 3, dtype=torch.uint8)
    crop_clip(coded_clip(), None, cfg.loader.video.__class__(size=fc.test_resize), None, out)
    views = spatial_crops(out.permute(3, 0, 1, 2)[None, None].float(), size, fc.test_crops)[0, 0]  # [3, C, T, s, s]
    ours = [(2 * float(v[1].min()), 2 * float(v[1].max())) for v in views]
    side = (W - H) / 2  # the centre square starts 40 px in
    assert abs(ours[0][0] - side) <= 2 and abs(ours[2][1] - (W - side)) <= 3
    assert abs((ours[1][0] + ours[1][1]) / 2 - W / 2) <= 2  # the centre crop is centred, as officially
    assert side / W == 1 / 8
