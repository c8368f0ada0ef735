"""Make the audio-feature parity fixtures from the official GDT and SeLaVi code.

Not part of the project and not run by the tests: it imports the official
``datasets/audio_utils.py`` of both repositories (their ``get_spec``, which calls
python_speech_features 0.6's ``logfbank``) and ``datasets/spec_augment_pytorch.py`` of
GDT, with the imports they never call on this path stubbed (ffmpeg, librosa, matplotlib,
the sparse image warp). See tests/parity/README.md, "Audio features", for the commands.

    PYTHONPATH=<dir with python_speech_features 0.6>:$PWD python \
        tests/parity/make_fixtures/audio_features.py --gdt <GDT checkout> --selavi <SeLaVi checkout> \
        --media ../shared/media --out tests/parity/fixtures

Inputs (stored in the fixtures, so the tests need neither the media nor the decoder):
1 s of 24 kHz int16 mono from two real recordings (decoded and resampled by PyAV's
libswresample, as the official ffmpeg call does) and one seeded waveform (a chirp plus
noise, its last 0.3 s exactly zero, so the log floor of python_speech_features is hit).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import types
from pathlib import Path

import av
import numpy as np
import torch
from safetensors.torch import save_file

RATE = 24000
# (file under media/, start second): a real instrument and real speech
REAL = [("audio/instruments/cello.ogg", 1.0), ("video/speech_obama.mp4", 2.0)]
SEEDS = [11, 12, 13]  # of the official global RNGs (numpy, random) per waveform
AUG_MEDIUM = [1, 1, 3, 6]  # GDT main_gdt.py, audio_augtype 'medium' (pretrain_gdt_k400.sh)


def decode(path: Path, start: float) -> np.ndarray:
    """1 s of mono int16 at 24 kHz from ``start`` seconds."""
    out = []
    with av.open(str(path)) as box:
        res = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in box.decode(audio=0):
            for f in res.resample(frame):
                out.append(f.to_ndarray().reshape(-1))
        for f in res.resample(None):
            out.append(f.to_ndarray().reshape(-1))
    wave = np.concatenate(out).astype(np.int16)
    s = int(start * RATE)
    assert len(wave) >= s + RATE, (path, len(wave))
    return wave[s:s + RATE].copy()


def seeded() -> np.ndarray:
    rng = np.random.default_rng(20261207)
    t = np.arange(RATE) / RATE
    x = 6000 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + rng.normal(0, 1500, RATE)
    x[int(0.7 * RATE):] = 0.0
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def load_official(repo: Path, name: str):
    """``datasets/audio_utils.py`` of an official checkout, its unused imports stubbed."""
    for mod in ("ffmpeg", "librosa", "librosa.display", "matplotlib", "matplotlib.pyplot",
                "sparse_image_warp_pytorch", "torchvision", "torchvision.transforms"):
        sys.modules.setdefault(mod, types.ModuleType(mod))
    sys.modules["sparse_image_warp_pytorch"].sparse_image_warp = None
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.path.insert(0, str(repo / "datasets"))  # GDT: ``from spec_augment_pytorch import ...``
    spec = importlib.util.spec_from_file_location(name, repo / "datasets" / "audio_utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.path.pop(0)
    return mod


def replay_draws(seed: int, freq_bins: int, frames: int, aug) -> tuple[float, list[list[int]]]:
    """The official draws of one ``get_spec`` call (volume, then spec_augment's widths and
    starts), replayed from the same seeds: (gain, [[f0, f], [t0, t]])."""
    np.random.seed(seed)
    random.seed(seed)
    gain = np.random.uniform(0.9, 1.1)
    bands = []
    for limit, size in ((aug[2], freq_bins), (aug[3], frames)):
        w = int(np.random.uniform(low=0.0, high=limit))
        bands.append([random.randint(0, size - w), w])
    return float(gain), bands


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gdt", type=Path, required=True)
    ap.add_argument("--selavi", type=Path, required=True)
    ap.add_argument("--media", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    gdt, selavi = load_official(a.gdt, "gdt_audio_utils"), load_official(a.selavi, "selavi_audio_utils")
    import python_speech_features as psf
    from python_speech_features.base import get_filterbanks

    names = [Path(p).stem for p, _ in REAL] + ["seeded"]
    waves = [decode(a.media / p, s) for p, s in REAL] + [seeded()]
    a.out.mkdir(parents=True, exist_ok=True)
    save_file({n: torch.from_numpy(w) for n, w in zip(names, waves)}, str(a.out / "audio_waves.safetensors"))

    meta = {"rate": RATE, "waves": names, "gain": {}, "bands": {},
            "python_speech_features": getattr(psf, "__version__", "0.6"), "numpy": np.__version__}
    gdt_out, selavi_out = {}, {}
    for name, wave, seed in zip(names, waves, SEEDS):
        # GDT, aud_spec_type=1, z-normalised: plain, volume-jittered, jittered + SpecAugment
        gdt_out[f"{name}/plain"] = gdt.get_spec(wave, 0, num_sec=1, sample_rate=RATE, aud_spec_type=1,
                                                z_normalize=True)
        np.random.seed(seed)
        random.seed(seed)
        gdt_out[f"{name}/jitter"] = gdt.get_spec(wave, 0, num_sec=1, sample_rate=RATE, aud_spec_type=1,
                                                 use_volume_jittering=True, z_normalize=True)
        np.random.seed(seed)
        random.seed(seed)
        masked = gdt.get_spec(wave, 0, num_sec=1, sample_rate=RATE, aug_audio=AUG_MEDIUM, aud_spec_type=1,
                              use_volume_jittering=True, z_normalize=True)
        gdt_out[f"{name}/masked"] = masked
        gain, bands = replay_draws(seed, *masked.shape[1:], AUG_MEDIUM)
        (f0, f), (t0, t) = bands
        assert (masked[:, f0:f0 + f] == 0).all() and (masked[:, :, t0:t0 + t] == 0).all()
        meta["gain"][name], meta["bands"][name] = gain, bands
        # SeLaVi, aud_spec_type=2 (master.sh): volume jitter, no z-normalisation, no SpecAugment
        np.random.seed(seed)
        selavi_out[f"{name}/jitter"] = selavi.get_spec(wave, 0, num_sec=1, sample_rate=RATE, aud_spec_type=2,
                                                       use_volume_jittering=True, z_normalize=False)
    save_file({k: v.contiguous() for k, v in gdt_out.items()}, str(a.out / "audio_gdt.safetensors"))
    for name in names:
        save_file({"jitter": selavi_out[f"{name}/jitter"].contiguous()},
                  str(a.out / f"audio_selavi_{name}.safetensors"))

    # the filterbanks' triangle corners (FFT bins) for the filter counts the recipes use
    meta["filter_edges"] = {}
    for nfilt in (40, 257):
        fb = get_filterbanks(nfilt, 1024, RATE, 0, RATE / 2)
        meta["filter_edges"][str(nfilt)] = {"nonzero_per_filter": [int(c) for c in (fb > 0).sum(1)],
                                            "sum": float(fb.sum())}
    # SpecAugment, as the official draws fall (GDT 'medium': F = 3, T = 6): each kind of
    # band alone (the other's count 0), so a band is read off the zeroed rows / columns
    spec_augment = sys.modules["spec_augment_pytorch"].spec_augment
    meta["specaugment_medium"] = {"draws": 4000}
    for kind, counts in (("freq", (1, 0)), ("time", (0, 1))):
        np.random.seed(0)
        random.seed(0)
        widths, ends = {}, set()
        for _ in range(4000):
            out = spec_augment(torch.ones(1, 40, 99), time_warping_para=1, frequency_mask_num=counts[0],
                               time_mask_num=counts[1], frequency_masking_para=AUG_MEDIUM[2],
                               time_masking_para=AUG_MEDIUM[3])[0]
            hit = (out == 0).all(1 if kind == "freq" else 0).nonzero().flatten().tolist()
            widths[len(hit)] = widths.get(len(hit), 0) + 1
            if hit:
                assert hit == list(range(hit[0], hit[-1] + 1))  # one contiguous band
                ends.update((hit[0], hit[-1] + 1))
        meta["specaugment_medium"][kind] = {"widths": {str(k): widths[k] for k in sorted(widths)},
                                            "first_start": min(ends), "last_end": max(ends)}
    (a.out / "audio_official.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print("wrote", sorted(p.name for p in a.out.glob("audio_*")))


if __name__ == "__main__":
    main()
