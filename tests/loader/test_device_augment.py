"""``DeviceAugment`` after the workers' uint8 batch equals the loader's former all-CPU
path (float jitter and log-mel in the workers), same seed, same samples; on CPU, and on
CUDA when the machine has it.

The reference below is that former path, per sample, as it was: torchvision's uint8
resize of the crop, the colour jitter composed in numpy (float64) from the crop's mean
colour, normalisation and clamp in float32; the float WAV window times the drawn gain,
clipped, log-mel and SpecAugment bands. Tolerance: 1e-4 on normalised pixels (a grey
level is ~0.018) and on standardised log-mels on CPU; 2e-3 on log-mels on CUDA (cuFFT
sums in another order).
"""
import json
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
import webdataset as wds

from pipeline.config import load_config
from pipeline.io.wav import read_window
from pipeline.loader.audio_transforms import LogMel, apply_spec_masks, draw_spec_masks
from pipeline.loader.colour_jitter import GREY, KEEP_Y, LUMA, TURN_COS, TURN_SIN
from pipeline.loader.decode import get_decoder
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards
from pipeline.loader.sample import clip_starts, view_layout
from pipeline.loader.video_transforms import crop_params

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
SEED = 9


def reference_affine(mean_rgb, strength, rng):
    """The former numpy colour jitter: random factors in a random order, composed."""
    j = strength
    factors = [("brightness", rng.uniform(1 - j, 1 + j)), ("contrast", rng.uniform(1 - j, 1 + j)),
               ("saturation", rng.uniform(1 - j, 1 + j)), ("hue", rng.uniform(-j / 4, j / 4))]
    m, b = np.eye(3), np.zeros(3)
    for op, f in [factors[k] for k in rng.permutation(4)]:
        mu = m @ mean_rgb + b
        if op == "brightness":
            m, b = f * m, f * b
        elif op == "contrast":
            m, b = f * m, f * b + (1 - f) * float(LUMA @ mu)
        else:
            a = 2 * math.pi * f
            step = f * np.eye(3) + (1 - f) * GREY if op == "saturation" else \
                KEEP_Y + math.cos(a) * TURN_COS + math.sin(a) * TURN_SIN
            m, b = step @ m, step @ b
    return m, b


def reference_sample(raw, rng, cfg: LoaderConfig, logmel):
    """The former CPU path of one sample: video [V, 3, T, S, S], waves and bands of the
    source views."""
    c, vc, ac = cfg.clip, cfg.video, cfg.audio
    meta = json.loads(raw["json"])
    fps, n = float(meta["fps"]), int(meta["n_frames"])
    span = (c.frames - 1) * c.stride + 1
    starts = clip_starts(n, span, c.positions, int(round(c.min_shift * fps)), rng)
    wanted = sorted({s + k * c.stride for s in starts for k in range(c.frames)})
    decoded = get_decoder(c.backend)(raw["mp4"], wanted)
    views, waves, masks = [], [], []
    mean, std = np.asarray(vc.mean), np.asarray(vc.std)
    for pos, _copy, rev in view_layout(c):
        if rev:
            views.append(views[-1].flip(1))
            continue
        frames = decoded[[wanted.index(starts[pos] + k * c.stride) for k in range(c.frames)]]
        h, w = frames.shape[1:3]
        top, left, ch, cw = crop_params(h, w, vc.scale, vc.ratio, rng)
        flip = rng.random() < vc.flip
        x = TF.resized_crop(frames.permute(0, 3, 1, 2), top, left, ch, cw, [vc.size] * 2, antialias=True)
        mean_rgb = x.double().mean(dim=(0, 2, 3)).numpy() / 255
        m, b = reference_affine(mean_rgb, vc.jitter, rng) if rng.random() < vc.jitter_prob else (np.eye(3), np.zeros(3))
        mm, bb = m / (255 * std[:, None]), (b - mean) / std
        planes = x.permute(1, 0, 2, 3).float()
        planes = planes.flip(-1) if flip else planes
        out = torch.addmm(torch.tensor(bb, dtype=torch.float32)[:, None], torch.tensor(mm, dtype=torch.float32),
                          planes.reshape(3, -1))
        lo, hi = torch.tensor(-mean / std, dtype=torch.float32), torch.tensor((1 - mean) / std, dtype=torch.float32)
        views.append(torch.minimum(torch.maximum(out, lo[:, None]), hi[:, None]).reshape(planes.shape))
        centre = (starts[pos] + span / 2) / fps
        wave = read_window(raw["wav"], centre - ac.seconds / 2, ac.seconds, ac.rate)
        gain = rng.uniform(*ac.volume) * 10 ** (rng.uniform(*ac.gain_db) / 20)
        waves.append(np.clip(wave * gain, -1.0, 1.0).astype(np.float32))
        masks.append(draw_spec_masks(ac, *logmel(torch.zeros(len(wave))).shape[-2:], rng))
    return torch.stack(views), np.stack(waves), np.stack(masks)


@pytest.mark.parametrize("device", DEVICES)
def test_device_augment_equals_the_former_cpu_path(synth_shards, device):
    shard = expand_shards(str(synth_shards))[0]
    cfg = load_config(LoaderConfig, [], [
        f"shards={shard}", "workers=0", "resampled=false", "shuffle_shards=false", "shuffle_buffer=1",
        "batch_size=4", "epoch_batches=1", f"seed={SEED}", "clip.positions=2", "clip.reverse=true",
        "clip.frames=5", "clip.stride=2", "video.size=40", "video.jitter_prob=0.9",
        "clip.crop_in_decoder=false"])  # the reference crops with torch (PyAV's own: test_decode_crop.py)
    batch = next(iter(ClipLoader(cfg)))
    got = DeviceAugment.from_loader(cfg).to(device)(batch)
    assert got["video"].device.type == device
    logmel = LogMel(cfg.audio)
    raws = list(wds.WebDataset([shard], shardshuffle=False))[:4]
    ref_video, ref_audio = [], []
    for pos, raw in enumerate(raws, start=1):  # the loader's per-sample Generator
        video, waves, masks = reference_sample(raw, np.random.default_rng([SEED, 0, 0, 0, pos]), cfg, logmel)
        spec = apply_spec_masks(logmel(torch.from_numpy(waves)), torch.from_numpy(masks), cfg.audio.freq_masks)
        ref_video.append(video)
        ref_audio.append(torch.stack([spec[0], spec[0].flip(-1), spec[1], spec[1].flip(-1)]))
    assert batch["key"] == [r["__key__"] for r in raws]
    ref_video, ref_audio = torch.stack(ref_video), torch.stack(ref_audio)
    assert got["video"].shape == ref_video.shape and got["audio"].shape == ref_audio.shape
    assert (got["video"].cpu() - ref_video).abs().max() <= 1e-4
    assert (got["audio"].cpu() - ref_audio).abs().max() <= (1e-4 if device == "cpu" else 2e-3)
    # the batch had jittered and unjittered clips, flips, and masked bands
    assert (batch["jitter"] != [1, 1, 1, 0]).any(axis=-1).any() and (batch["spec_masks"][..., 1] > 0).any()


@pytest.mark.parametrize("device", DEVICES)
def test_device_augment_casts_and_evaluation_is_plain_normalisation(synth_shards, device):
    """Evaluation batches: centre crops, identity jitter: the output is just the
    normalised pixels; ``dtype`` casts video and audio (bf16 training)."""
    cfg = load_config(LoaderConfig, [], [f"shards={synth_shards}", "workers=0", "resampled=false", "train=false",
                                         "batch_size=3", "clip.frames=4", "video.size=32"])
    batch = next(iter(ClipLoader(cfg)))
    out = DeviceAugment.from_loader(cfg, torch.bfloat16).to(device)(batch)
    assert out["video"].dtype == torch.bfloat16 and out["audio"].dtype == torch.bfloat16
    mean = torch.tensor(cfg.video.mean).view(3, 1, 1, 1)
    std = torch.tensor(cfg.video.std).view(3, 1, 1, 1)
    plain = (batch["video"][:, 0].permute(0, 4, 1, 2, 3).float() / 255 - mean) / std
    assert torch.allclose(out["video"][:, 0].float().cpu(), plain, atol=0.02)  # bf16: 8 bits of mantissa
