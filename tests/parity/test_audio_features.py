"""The paper recipes' audio features equal the official code's (issue 23).

Fixtures (tests/parity/fixtures/audio_*; how they were made: tests/parity/README.md,
"Audio features"): three 1 s waveforms at 24 kHz (int16: a cello, speech, a seeded chirp
with 0.3 s of exact silence) and what the official ``get_spec`` of GDT (873e630,
``aud_spec_type=1``, z-normalised) and SeLaVi (33d2b2d, ``aud_spec_type=2``) computed from
them with python_speech_features 0.6, with and without the volume jitter and GDT's
SpecAugment ('medium'), plus the draws that produced them.

The project's side runs as training runs it: the recipe's ``loader.audio`` config, and
``DeviceAugment.audio`` on int16 waves [B, P, n], float64 gains [B, P] and SpecAugment
bands [B, P, M, 2] as the loader's workers hand them over. Tolerance 1e-4 (issue 23); on
CPU the difference is 0, on CUDA cuFFT's float64 sums differ in the last bits.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import CONFIGS, ConfigError, load_config
from pipeline.loader.audio_features import AudioFeatures, feature_shape, filterbank
from pipeline.loader.audio_transforms import AudioConfig, draw_spec_masks
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig
from pipeline.models.audio import PRESETS, AudioBackbone
from pipeline.train.config import TrainConfig

FIX = Path(__file__).parent / "fixtures"
META = json.loads((FIX / "audio_official.json").read_text())
WAVES = load_file(str(FIX / "audio_waves.safetensors"))
GDT = load_file(str(FIX / "audio_gdt.safetensors"))
NAMES = META["waves"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
TOL = 1e-4


def recipe(name: str) -> LoaderConfig:
    return load_config(TrainConfig, [CONFIGS / name], ["out=unused"]).loader


def device_features(loader: LoaderConfig, device: str, gains, bands=None) -> torch.Tensor:
    """The recipe's DeviceAugment on the fixture waves, one batch [B = 3 waves, P = 1]."""
    aug = DeviceAugment.from_loader(loader).to(device)
    wave = torch.stack([WAVES[n] for n in NAMES])[:, None].to(device)
    gain = torch.tensor(gains, dtype=torch.float64)[:, None].to(device)
    m = loader.audio.freq_masks + loader.audio.time_masks
    masks = torch.zeros(len(NAMES), 1, m, 2, dtype=torch.int16) if bands is None else \
        torch.tensor(bands, dtype=torch.int16)[:, None]
    return aug.audio(wave, gain, masks.to(device))[:, 0].cpu()


def test_recipes_name_the_official_forms():
    gdt, selavi = recipe("gdt_k400.yaml").audio, recipe("selavi_vggsound.yaml").audio
    assert (gdt.features, gdt.n_mels, gdt.rate, gdt.seconds, tuple(gdt.volume), tuple(gdt.gain_db)) == \
        ("gdt", 40, 24000, 1.0, (0.9, 1.1), (0.0, 0.0))
    # GDT 'medium': 1 + 1 bands, widths int(U(0, 3)) and int(U(0, 6)): 0-2 bins, 0-5 frames
    assert (gdt.freq_masks, gdt.freq_mask_width, gdt.time_masks, gdt.time_mask_width) == (1, 2, 1, 5)
    assert (selavi.features, selavi.n_mels, selavi.rate, tuple(selavi.volume), tuple(selavi.gain_db)) == \
        ("selavi", 257, 24000, (0.9, 1.1), (0.0, 0.0))
    assert selavi.freq_masks == selavi.time_masks == 0  # SeLaVi's loader has no SpecAugment


@pytest.mark.parametrize("n_filters", [40, 257])
def test_filterbank_equals_logfbank(n_filters):
    fb = filterbank(n_filters, META["rate"])
    want = META["filter_edges"][str(n_filters)]
    assert fb.shape == (n_filters, 513)
    assert (fb > 0).sum(1).tolist() == want["nonzero_per_filter"]
    assert abs(fb.sum().item() - want["sum"]) < 1e-9
    if n_filters == 257:  # the official bank's empty filters: constant log(eps) rows
        assert sum(c == 0 for c in want["nonzero_per_filter"]) == 38


@pytest.mark.parametrize("device", DEVICES)
def test_gdt_features_equal_official(device):
    loader = recipe("gdt_k400.yaml")
    assert feature_shape(loader.audio) == (40, 99)
    plain = device_features(loader, device, [1.0] * len(NAMES))
    jitter = device_features(loader, device, [META["gain"][n] for n in NAMES])
    masked = device_features(loader, device, [META["gain"][n] for n in NAMES], [META["bands"][n] for n in NAMES])
    for i, name in enumerate(NAMES):
        for got, key in ((plain, "plain"), (jitter, "jitter"), (masked, "masked")):
            want = GDT[f"{name}/{key}"]
            assert want.shape == got[i].shape == (1, 40, 99), (name, key)
            assert (got[i] - want).abs().max() < TOL, (name, key)
        assert (plain[i] - jitter[i]).abs().max() > 1e-3  # the gain matters
        assert (masked[i] == 0).sum() > (jitter[i] == 0).sum() or META["bands"][name] == [[0, 0], [0, 0]]
    floor = (torch.tensor(np.log(np.finfo(float).eps), dtype=torch.float32) - 1.93) / 17.89
    assert (jitter[2] == floor).any() and (GDT["seeded/jitter"] == floor).any()  # silence: log(eps)


@pytest.mark.parametrize("device", DEVICES)
def test_selavi_features_equal_official(device):
    loader = recipe("selavi_vggsound.yaml")
    assert feature_shape(loader.audio) == (257, 99)
    got = device_features(loader, device, [META["gain"][n] for n in NAMES])
    for i, name in enumerate(NAMES):
        want = load_file(str(FIX / f"audio_selavi_{name}.safetensors"))["jitter"]
        assert want.shape == got[i].shape == (1, 257, 99)
        assert (got[i] - want).abs().max() < TOL, name
    # the official audio net's input: ResNet-9 pools over both axes of [B, 1, 257, 99]
    assert AudioBackbone(PRESETS["resnet9"]).eval()(got[:2]).shape == (2, 512)


def test_specaugment_widths_are_the_official_ranges():
    """GDT's bands (``spec_augment``, 'medium') have widths int(U(0, F)): each of 0..F-1
    equally often; the recipe's draws give the same widths, equally often, and bands that
    reach both edges, over the official draws' count."""
    cfg = recipe("gdt_k400.yaml").audio
    off = META["specaugment_medium"]
    rng = np.random.default_rng(0)
    draws = np.stack([draw_spec_masks(cfg, *feature_shape(cfg), rng) for _ in range(off["draws"])])
    for row, kind, size in ((0, "freq", 40), (1, "time", 99)):
        want = {int(k): v / off["draws"] for k, v in off[kind]["widths"].items()}
        start, width = draws[:, row, 0].astype(int), draws[:, row, 1].astype(int)
        assert set(np.unique(width)) == set(want), kind
        for w, share in want.items():
            assert abs((width == w).mean() - share) < 0.05, (kind, w)
        used = width > 0
        assert start[used].min() == off[kind]["first_start"] == 0
        assert (start + width)[used].max() == off[kind]["last_end"] == size


@pytest.mark.parametrize("features,n_mels,rate,seconds,win,hop", [
    ("gdt", 40, 24000, 1.0, 20.0, 10.0), ("selavi", 257, 24000, 1.0, 20.0, 10.0),
    ("gdt", 40, 16000, 0.5, 20.0, 10.0), ("selavi", 64, 16000, 1.03, 25.0, 10.0),
    ("logmel", 40, 16000, 1.0, 20.0, 10.0), ("logmel", 40, 24000, 0.5, 25.0, 10.0),
    ("logmel", 40, 22050, 1.0, 20.0, 10.0), ("gdt", 40, 8000, 0.01, 20.0, 10.0)])
def test_feature_shape_is_what_the_features_give(features, n_mels, rate, seconds, win, hop):
    """The loader sizes SpecAugment bands and exports the model's input shape from
    ``feature_shape``: it is the features' own shape (uncentred logfbank frames, the last
    zero-padded; centred STFT frames for log-mel)."""
    cfg = load_config(AudioConfig, [], [f"features={features}", f"n_mels={n_mels}", f"rate={rate}",
                                         f"seconds={seconds}", f"win_ms={win}", f"hop_ms={hop}"])
    n = int(round(seconds * rate))
    wave = torch.randint(-3000, 3000, (2, n), dtype=torch.int16, generator=torch.Generator().manual_seed(0))
    out = AudioFeatures(cfg)(wave, torch.ones(2, dtype=torch.float64))
    assert out.shape == (2, 1, *feature_shape(cfg)) and torch.isfinite(out).all()


def test_loader_batches_carry_the_official_shape(synth_shards):
    """End to end on real shards (16 kHz): ``features=gdt`` gives the audio model
    [B, V, 1, 40, 99] for 1 s, SpecAugment bands inside it, float64 gains."""
    cfg = load_config(LoaderConfig, [], [f"shards={synth_shards}", "workers=0", "resampled=false",
                                         "batch_size=2", "epoch_batches=1", "clip.frames=2", "video.size=32",
                                         "audio.features=gdt", "audio.freq_mask_width=2",
                                         "audio.time_mask_width=5"])
    batch = next(iter(ClipLoader(cfg)))
    assert batch["gain"].dtype == np.float64
    assert (batch["spec_masks"][..., 0] + batch["spec_masks"][..., 1] <= [40, 99]).all()
    out = DeviceAugment.from_loader(cfg)(batch)
    assert out["audio"].shape == (2, 1, 1, 40, 99) and torch.isfinite(out["audio"]).all()


@pytest.mark.parametrize("override,key", [("audio.features=mfcc", "audio.features"),
                                          ("audio.win_ms=50", "audio.win_ms")])
def test_bad_audio_features_settings_name_the_key(override, key):
    base = ["audio.features=gdt", "audio.rate=24000"] if "win_ms" in override else []
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(LoaderConfig, [], [*base, override])
