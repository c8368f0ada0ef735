"""Augmentations: the fused colour jitter equals torchvision's ops; boxes follow crops."""
import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from pipeline.loader.colour_jitter import LUMA, RGB2YIQ, compose_affine, normalised_affine
from pipeline.loader.fused_video import affine_planes
from pipeline.loader.video_transforms import VideoAugConfig, augment_clip, crop_boxes


def apply_colour(x, m, b):
    """uint8 [T, 3, H, W] -> float [3, T, H, W] in [0, 1] through (M, b), the torch path."""
    return affine_planes(x, False, *normalised_affine(m, b, (0, 0, 0), (1, 1, 1)))


def image(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, 16, 16, generator=g) * 0.4 + 0.3)  # mid-range: no clamping


@pytest.mark.parametrize("ops", [
    [("brightness", 1.3)], [("contrast", 0.7)], [("saturation", 1.4)],
    [("saturation", 0.6), ("brightness", 0.8), ("contrast", 1.2)],
])
def test_affine_equals_torchvision_sequence(ops):
    x = image()
    ref = x.clone()
    for op, f in ops:
        ref = getattr(TF, f"adjust_{op}")(ref, f)
    m, b = compose_affine(ops, x.mean(dim=(0, 2, 3)).double().numpy())
    got = apply_colour((x * 255).round().to(torch.uint8), m, b)
    ref_q = ((x * 255).round() / 255)
    for op, f in ops:
        ref_q = getattr(TF, f"adjust_{op}")(ref_q, f)
    assert torch.allclose(got.permute(1, 0, 2, 3), ref_q, atol=2e-3)


def test_hue_rotation_keeps_luma_and_turns_chroma():
    x = image(1)
    m, b = compose_affine([("hue", 0.25)], np.zeros(3))
    y = apply_colour((x * 255).round().to(torch.uint8), m, b)
    xq = (x * 255).round() / 255
    luma_in = torch.einsum("c,tchw->thw", torch.tensor(LUMA, dtype=torch.float32), xq)
    luma_out = torch.einsum("c,cthw->thw", torch.tensor(LUMA, dtype=torch.float32), y)
    assert torch.allclose(luma_in, luma_out, atol=1e-3)
    iq_in = torch.einsum("kc,tchw->kthw", torch.tensor(RGB2YIQ[1:], dtype=torch.float32), xq)
    iq_out = torch.einsum("kc,cthw->kthw", torch.tensor(RGB2YIQ[1:], dtype=torch.float32), y)
    # a quarter turn: I' = -Q, Q' = I
    assert torch.allclose(iq_out[0], -iq_in[1], atol=2e-3) and torch.allclose(iq_out[1], iq_in[0], atol=2e-3)
    m0, b0 = compose_affine([("hue", 0.0)], np.zeros(3))
    assert np.allclose(m0, np.eye(3)) and np.allclose(b0, 0)


def test_boxes_follow_crop_and_flip():
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.9, 0.9, 1.0, 1.0]])
    # crop the top-left 64x64 of a 128x128 frame: the first box doubles, the second leaves
    out = crop_boxes(boxes, 128, 128, 0, 0, 64, 64, flip=False)
    assert torch.allclose(out[0], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert torch.isnan(out[1]).all()
    flipped = crop_boxes(boxes, 128, 128, 0, 0, 64, 64, flip=True)
    assert torch.allclose(flipped[0], torch.tensor([0.0, 0.5, 0.5, 1.0]))


def test_augment_is_a_function_of_the_rng_and_same_for_all_frames():
    frames = torch.randint(0, 255, (4, 40, 48, 3), dtype=torch.uint8)
    frames[:] = frames[0]  # a still clip: every augmented frame must stay identical
    cfg = VideoAugConfig(size=24)
    boxes = torch.full((4, 4), float("nan"))
    a, _ = augment_clip(frames, boxes, cfg, np.random.default_rng(3))
    b, _ = augment_clip(frames, boxes, cfg, np.random.default_rng(3))
    c, _ = augment_clip(frames, boxes, cfg, np.random.default_rng(4))
    assert a.shape == (3, 4, 24, 24)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a[:, 0], a[:, 3])
    e, _ = augment_clip(frames, boxes, cfg, None)  # evaluation: centre crop, no jitter
    assert torch.equal(e, augment_clip(frames, boxes, cfg, None)[0])


@pytest.mark.parametrize("crop", [(3, 5, 30, 41), (0, 0, 48, 64), (10, 20, 9, 13)])
@pytest.mark.parametrize("flip", [False, True])
def test_crop_resize_colour_equals_torchvision(crop, flip):
    """The crop pass (shrinking, whole frame, enlarging; mirrored or not; torch ops since no
    C is compiled at run time) is torchvision's antialiased resize of the same crop followed
    by the colour transform, within the grey level that its uint8 resize rounds to."""
    from pipeline.loader.colour_jitter import normalised_affine
    from pipeline.loader.fused_video import crop_resize
    g = torch.Generator().manual_seed(7)
    frames = torch.randint(0, 256, (3, 48, 64, 3), dtype=torch.uint8, generator=g)
    crop_pass = crop_resize(frames, *crop, 24, flip=flip)
    ref = TF.resized_crop(frames.permute(0, 3, 1, 2).float(), *crop, [24, 24], antialias=True)
    assert np.allclose(crop_pass.mean, ref.double().mean(dim=(0, 2, 3)).numpy() / 255, atol=2e-3)
    ident = (np.eye(3), np.zeros(3), np.full(3, -np.inf), np.full(3, np.inf))
    got = crop_pass.planes(*ident).clone()
    assert got.shape == (3, 3, 24, 24) and got.dtype == torch.float32
    assert (got - affine_planes(ref, flip, *ident)).abs().max() <= 1.0 + 1e-3
    m, b = compose_affine([("saturation", 1.3), ("hue", 0.1), ("contrast", 0.8)], crop_pass.mean)
    args = normalised_affine(m, b, (0.4, 0.4, 0.4), (0.2, 0.25, 0.3))
    jittered = crop_resize(frames, *crop, 24, flip=flip).planes(*args)
    assert torch.allclose(jittered, affine_planes(got.transpose(0, 1), False, *args), atol=1e-4)


def test_augmentation_agrees_with_its_all_torch_version():
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (4, 40, 56, 3), dtype=torch.uint8, generator=g)
    cfg, boxes = VideoAugConfig(size=24, flip=0.5), torch.full((4, 4), float("nan"))
    for seed in range(4):
        a, _ = augment_clip(frames, boxes, cfg, np.random.default_rng(seed))
        t, _ = augment_clip(frames, boxes, cfg, np.random.default_rng(seed), native=False)
        # torchvision's uint8 resize is within a grey level, which brightness, contrast and
        # saturation may each enlarge by up to 1 + jitter, over the smallest std
        gain = (1 + cfg.jitter) ** 3
        assert (a - t).abs().max() <= gain / (255 * min(cfg.std)) + 1e-4


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
    from pipeline.loader.sample import box_table, frame_boxes
    rng = np.random.default_rng(0)
    fps = 25.0
    times = np.concatenate([np.arange(0, 40), np.arange(60, 90)]) / fps  # a gap of 20 frames
    rows = [[t, *rng.random(4)] for t in rng.permutation(times)]
    idx = [0, 5, 39, 40, 45, 59, 60, 89, 90, 120]
    got = frame_boxes(box_table(rows), idx, fps).numpy()
    arr = np.asarray(rows)
    for i, f in enumerate(idx):
        d = np.abs(arr[:, 0] - f / fps)
        if d.min() <= 0.75 / fps:
            assert np.allclose(got[i], arr[d.argmin(), 1:5])
        else:
            assert np.isnan(got[i]).all()
    assert np.isnan(got[[3, 4, 5, 8, 9]]).all() and not np.isnan(got[[0, 1, 2, 6, 7]]).any()
    assert box_table([]) is None
    one = frame_boxes(box_table([[1.0, 0.1, 0.2, 0.3, 0.4]]), [25, 26, 40], fps).numpy()
    assert np.allclose(one[0], [0.1, 0.2, 0.3, 0.4]) and np.isnan(one[1:]).all()
