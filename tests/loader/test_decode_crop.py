"""PyAV's crop + resize + mirror in its own RGB conversion (``loader.clip.crop_in_decoder``)
against the torch path (full-frame RGB from any backend, then torchvision's resize), on
real shard videos: the same geometry, pixels within a measured bound, and the same draws,
boxes and audio for a whole sample."""
import io
from dataclasses import replace

import av
import numpy as np
import pytest
import torch

from pipeline.config import load_config
from pipeline.loader.decode import BACKENDS, get_decoder
from pipeline.loader.loader import LoaderConfig
from pipeline.loader.sample import SampleDecoder
from pipeline.loader.batch_ring import batch_arrays
from pipeline.loader.video_transforms import ClipDraw, VideoAugConfig, draw_clip, resize_crop

# Mean absolute difference per pixel and channel (levels of 255) of a clip, swscale's area
# filter against torchvision's antialiased bilinear (decode_crop.py). Measured on these
# 64p videos at 40 px: 2.8 on average, 1.6-5.2 per video, at most 6.9 for a clip; on the
# real 128p shards of ../shared/media/video at 112 px: 2.1 on average, at most 4.7.
# The geometry is held apart from that: for every clip the true crop is closer than the
# crop one pixel off and than the unmirrored crop (those are 30-70 off on most videos).
CLIP_MEAN_BOUND = 8.0
MEAN_BOUND = 3.5
SIZE = 40


def in_decoder(data: bytes, clips: list[list[int]], draws: list[ClipDraw]) -> list[torch.Tensor]:
    outs = [torch.empty(len(c), SIZE, SIZE, 3, dtype=torch.uint8) for c in clips]
    get_decoder("pyav").crop_views(data, clips, lambda h, w: draws, outs)
    return outs


def after(decode, data: bytes, idx: list[int], d: ClipDraw) -> torch.Tensor:
    out = torch.empty(len(idx), SIZE, SIZE, 3, dtype=torch.uint8)
    resize_crop(decode(data, idx), d, out)
    return out


def mean_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.int() - b.int()).abs().float().mean())


def draws_for(h: int, w: int, seed: int) -> list[ClipDraw]:
    """Random resized crops (odd and even offsets, mirrored or not), the official short-side
    crop and the evaluation centre crop."""
    cfg, rng = VideoAugConfig(size=SIZE, flip=0.5), np.random.default_rng(seed)
    out = [draw_clip(h, w, cfg, rng) for _ in range(4)]
    out.append(draw_clip(h, w, replace(cfg, short_side=(48.0, 60.0)), rng))
    out.append(draw_clip(h, w, cfg, None))
    odd = out[0]
    out.append(replace(odd, top=odd.top | 1 if odd.top + odd.height < h else odd.top,
                       left=odd.left | 1 if odd.left + odd.width < w else odd.left, flip=True))
    return out


def test_crop_in_decoder_is_close_to_the_torch_crop_of_every_backend(real_shard_videos):
    decoders = {b: get_decoder(b) for b in BACKENDS}
    seen, mirrored, odd = [], [], 0
    for n_video, data in enumerate(real_shard_videos):
        with av.open(io.BytesIO(data)) as container:
            n = sum(1 for _ in container.decode(video=0))
        h, w = decoders["pyav"](data, [0]).shape[1:3]
        idx = [0, 3, n // 2, n - 1, n + 2]  # scattered, and past the end (the last frame)
        for d in draws_for(h, w, n_video):
            odd += bool(d.top % 2 or d.left % 2)
            got = in_decoder(data, [idx], [d])[0]
            for b, decode in decoders.items():  # the torch path is the same after every backend
                diff = mean_diff(got, after(decode, data, idx, d))
                assert diff <= CLIP_MEAN_BOUND, (n_video, b, d)
            seen.append(diff)
            # the crop is where it was drawn: one pixel off, or not mirrored, is further away
            shifted = replace(d, top=min(d.top + 1, h - d.height), left=min(d.left + 1, w - d.width))
            if (shifted.top, shifted.left) != (d.top, d.left):
                assert mean_diff(got, after(decoders["pyav"], data, idx, shifted)) > diff, (n_video, d)
            mirrored.append(mean_diff(got, after(decoders["pyav"], data, idx, replace(d, flip=not d.flip))))
            assert mirrored[-1] > diff, (n_video, d)
    assert len(real_shard_videos) >= 6 and odd >= 6
    assert np.mean(seen) <= MEAN_BOUND < 4 * MEAN_BOUND < np.mean(mirrored)


def test_a_sample_draws_the_same_numbers_with_the_crop_in_the_decoder(synth_sample):
    """SampleDecoder with the crop in PyAV's conversion or after it: the same crops,
    mirrors, jitter, boxes, audio windows, gains and masks (the random stream is drawn in
    the same order), video within the bound; several views (GDT's two positions, SimCLR's
    two copies) and evaluation's centre crop."""
    for train, views in ((True, ["clip.positions=2", "clip.copies=2", "clip.min_shift=0.5"]), (False, [])):
        got = {}
        for crop in ("true", "false"):
            cfg = load_config(LoaderConfig, [], ["clip.backend=pyav", f"clip.crop_in_decoder={crop}", "clip.frames=6",
                                                 "clip.stride=2", f"video.size={SIZE}", *views])
            dec = SampleDecoder(cfg.clip, cfg.video, cfg.audio, train, tuple(cfg.modalities))
            assert dec.crops_in_decoder == (crop == "true")
            rows = {k: v[0] for k, v in batch_arrays(dec.shapes, 1).items()}
            fields = dec(synth_sample, np.random.default_rng(7), rows)
            got[crop] = ({k: v.clone() for k, v in rows.items()}, fields)
        (rows_d, f_d), (rows_t, f_t) = got["true"], got["false"]
        assert f_d.keys() == f_t.keys()
        for k in f_d:
            a, b = np.asarray(f_d[k]), np.asarray(f_t[k])
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), k
        assert torch.equal(rows_d["wave"], rows_t["wave"])
        assert rows_d["video"].shape == rows_t["video"].shape
        for v in range(rows_d["video"].shape[0]):
            assert 0 < mean_diff(rows_d["video"][v], rows_t["video"][v]) <= CLIP_MEAN_BOUND
        assert np.isfinite(f_d["boxes"]).any()  # the synthetic object's boxes, mapped into the crops


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "pyav"])
def test_other_backends_keep_the_torch_crop(backend):
    cfg = load_config(LoaderConfig, [], [f"clip.backend={backend}", "clip.crop_in_decoder=true"])
    assert cfg.clip.crop_in_decoder and not SampleDecoder(cfg.clip, cfg.video, cfg.audio, True).crops_in_decoder
