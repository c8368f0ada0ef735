"""Augmentations: the batched colour jitter equals torchvision's ops; boxes follow crops;
the uint8 crop is a function of the rng; log-mels and SpecAugment bands."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from pipeline.loader.colour_jitter import LUMA, RGB2YIQ, ColourAffine
from pipeline.loader.video_transforms import JITTER_OPS, VideoAugConfig, crop_boxes, crop_clip


def compose(ops, mean_rgb):
    """(M, b) of ``ops`` [(name, factor), ...] applied in order, through the batched
    composition (the ops not named get identity factors, after the named ones)."""
    factors = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    named = [JITTER_OPS.index(op) for op, _ in ops]
    for (op, f), k in zip(ops, named):
        factors[0, k] = f
    order = torch.tensor([named + [k for k in range(4) if k not in named]])
    m, b = ColourAffine()(factors, order, torch.as_tensor(np.asarray(mean_rgb))[None])
    return m[0], b[0]


def apply_colour(x, m, b):
    """uint8 [T, 3, H, W] -> float [3, T, H, W] in [0, 1] through (M, b)."""
    y = torch.einsum("ck,tkhw->cthw", m, x.double() / 255) + b[:, None, None, None]
    return y.clamp(0, 1).float()


def image(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, 16, 16, generator=g) * 0.4 + 0.3)  # mid-range: no clamping


@pytest.mark.parametrize("ops", [
    [("brightness", 1.3)], [("contrast", 0.7)], [("saturation", 1.4)],
    [("saturation", 0.6), ("brightness", 0.8), ("contrast", 1.2)],
    [("contrast", 1.2), ("brightness", 0.8), ("saturation", 0.6)],
])
def test_affine_equals_torchvision_sequence(ops):
    x = image()
    xq = (x * 255).round() / 255
    m, b = compose(ops, xq.mean(dim=(0, 2, 3)).double())
    got = apply_colour((x * 255).round().to(torch.uint8), m, b)
    ref = xq
    for op, f in ops:
        ref = getattr(TF, f"adjust_{op}")(ref, f)
    assert torch.allclose(got.permute(1, 0, 2, 3), ref, atol=2e-3)


def test_a_batch_composes_each_clip_on_its_own():
    """Clips of one batch with different factors, orders and mean colours get exactly
    the transforms they would get alone."""
    g = torch.Generator().manual_seed(3)
    factors = torch.rand(6, 4, generator=g) * 0.8 + 0.6
    factors[:, 3] -= 1.0  # hue shifts in [-0.4, 0.4]
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(6)])
    mean = torch.rand(6, 3, generator=g, dtype=torch.float64)
    m, b = ColourAffine()(factors, order, mean)
    for i in range(6):
        ops = [(JITTER_OPS[k], float(factors[i, k])) for k in order[i]]
        mi, bi = compose(ops, mean[i])
        assert torch.allclose(m[i], mi) and torch.allclose(b[i], bi)


def test_hue_rotation_keeps_luma_and_turns_chroma():
    x = image(1)
    m, b = compose([("hue", 0.25)], np.zeros(3))
    y = apply_colour((x * 255).round().to(torch.uint8), m, b)
    xq = (x * 255).round() / 255
    luma_in = torch.einsum("c,tchw->thw", torch.tensor(LUMA, dtype=torch.float32), xq)
    luma_out = torch.einsum("c,cthw->thw", torch.tensor(LUMA, dtype=torch.float32), y)
    assert torch.allclose(luma_in, luma_out, atol=1e-3)
    iq_in = torch.einsum("kc,tchw->kthw", torch.tensor(RGB2YIQ[1:], dtype=torch.float32), xq)
    iq_out = torch.einsum("kc,cthw->kthw", torch.tensor(RGB2YIQ[1:], dtype=torch.float32), y)
    # a quarter turn: I' = -Q, Q' = I
    assert torch.allclose(iq_out[0], -iq_in[1], atol=2e-3) and torch.allclose(iq_out[1], iq_in[0], atol=2e-3)
    m0, b0 = compose([("hue", 0.0)], np.zeros(3))
    assert torch.allclose(m0, torch.eye(3, dtype=torch.float64)) and torch.allclose(b0, torch.zeros(3, dtype=torch.float64))


def test_boxes_follow_crop_and_flip():
    boxes = np.array([[0.25, 0.25, 0.5, 0.5], [0.9, 0.9, 1.0, 1.0]])
    # crop the top-left 64x64 of a 128x128 frame: the first box doubles, the second leaves
    out = crop_boxes(boxes, 128, 128, 0, 0, 64, 64, flip=False)
    assert np.allclose(out[0], [0.5, 0.5, 1.0, 1.0])
    assert np.isnan(out[1]).all()
    flipped = crop_boxes(boxes, 128, 128, 0, 0, 64, 64, flip=True)
    assert np.allclose(flipped[0], [0.0, 0.5, 0.5, 1.0])


def test_crop_is_a_function_of_the_rng_and_same_for_all_frames():
    frames = torch.randint(0, 255, (4, 40, 48, 3), dtype=torch.uint8)
    frames[:] = frames[0]  # a still clip: every cropped frame must stay identical
    cfg = VideoAugConfig(size=24)

    def crop(rng):
        out = torch.empty(4, 24, 24, 3, dtype=torch.uint8)
        _, factors, order = crop_clip(frames, None, cfg, rng, out)
        return out, factors, order
    a, fa, oa = crop(np.random.default_rng(3))
    b, fb, ob = crop(np.random.default_rng(3))
    c, _, _ = crop(np.random.default_rng(4))
    assert torch.equal(a, b) and np.array_equal(fa, fb) and np.array_equal(oa, ob)
    assert not torch.equal(a, c)
    assert torch.equal(a[0], a[3])
    e, fe, oe = crop(None)  # evaluation: centre crop, no flip, no jitter
    assert torch.equal(e, crop(None)[0]) and np.array_equal(fe, [1, 1, 1, 0]) and np.array_equal(oe, range(4))
    # the centre crop is torchvision's antialiased resize of the centre square
    ref = TF.resized_crop(frames.permute(0, 3, 1, 2), 0, 4, 40, 40, [24, 24], antialias=True)
    assert torch.equal(e, ref.permute(0, 2, 3, 1))


def test_batched_log_mel_and_spec_masks_equal_per_clip_ones():
    """A batch of waveforms gives each clip's own log-mel (top_db floor and standardisation
    per clip, not per batch), and the drawn SpecAugment bands zero exactly those rows and
    columns."""
    from pipeline.loader.audio_transforms import AudioConfig, LogMel, apply_spec_masks, draw_spec_masks
    cfg = AudioConfig(freq_masks=2, time_masks=1)
    logmel = LogMel(cfg)
    g = torch.Generator().manual_seed(0)
    waves = torch.randn(3, 16000, generator=g) * torch.tensor([[1.0], [1e-3], [0.3]])
    batch = logmel(waves)
    assert batch.shape == (3, 1, 40, 101)
    for i in range(3):
        assert torch.allclose(batch[i], logmel(waves[i]), atol=1e-5)
    import torchaudio  # the same as torchaudio's MelSpectrogram + AmplitudeToDB, standardised
    ref = torchaudio.transforms.AmplitudeToDB("power", 80.0)(
        torchaudio.transforms.MelSpectrogram(16000, n_fft=320, hop_length=160, n_mels=40)(waves[:, None]) + 1e-10)
    ref = (ref - ref.mean(dim=(-2, -1), keepdim=True)) / (ref.std(dim=(-2, -1), keepdim=True) + 1e-5)
    assert torch.allclose(batch, ref, atol=1e-3)
    rng = np.random.default_rng(4)
    masks = np.stack([draw_spec_masks(cfg, 40, 101, rng) for _ in range(3)])
    assert (masks[:, :, 1] > 0).any() and not draw_spec_masks(cfg, 40, 101, None).any()
    got = apply_spec_masks(batch.clone(), torch.from_numpy(masks), cfg.freq_masks)
    ref = batch.clone()
    for i in range(3):
        for j, (start, width) in enumerate(masks[i]):
            if j < cfg.freq_masks:
                ref[i, :, start:start + width, :] = 0
            else:
                ref[i, :, :, start:start + width] = 0
    assert torch.equal(got, ref)


def test_frame_boxes_take_the_nearest_box_in_time():
    """Against the brute-force nearest box: unsorted tables, gaps (NaN beyond 0.75 frame),
    frames before the first and after the last box."""
    from pipeline.loader.boxes import box_table, frame_boxes
    rng = np.random.default_rng(0)
    fps = 25.0
    times = np.concatenate([np.arange(0, 40), np.arange(60, 90)]) / fps  # a gap of 20 frames
    rows = [[t, *rng.random(4)] for t in rng.permutation(times)]
    idx = [0, 5, 39, 40, 45, 59, 60, 89, 90, 120]
    got = frame_boxes(box_table(rows), idx, fps)
    arr = np.asarray(rows)
    for i, f in enumerate(idx):
        d = np.abs(arr[:, 0] - f / fps)
        if d.min() <= 0.75 / fps:
            assert np.allclose(got[i], arr[d.argmin(), 1:5])
        else:
            assert np.isnan(got[i]).all()
    assert np.isnan(got[[3, 4, 5, 8, 9]]).all() and not np.isnan(got[[0, 1, 2, 6, 7]]).any()
    assert box_table([]) is None
    one = frame_boxes(box_table([[1.0, 0.1, 0.2, 0.3, 0.4]]), [25, 26, 40], fps)
    assert np.allclose(one[0], [0.1, 0.2, 0.3, 0.4]) and np.isnan(one[1:]).all()
