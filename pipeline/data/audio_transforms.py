"""Log-mel spectrograms (torchaudio) and the audio augmentations of the methods:
volume jitter, random gain and SpecAugment-style time and frequency masks."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torchaudio


@dataclass
class AudioConfig:
    rate: int = field(default=16000, metadata={"help": "sample rate the shards store, Hz"})
    seconds: float = field(default=1.0, metadata={"help": "audio window length, centred on the clip"})
    n_mels: int = field(default=40, metadata={"help": "mel bins"})
    win_ms: float = field(default=20.0, metadata={"help": "STFT window, ms"})
    hop_ms: float = field(default=10.0, metadata={"help": "STFT hop, ms"})
    volume: tuple[float, float] = field(default=(0.9, 1.1), metadata={"help": "volume jitter range (training)"})
    gain_db: tuple[float, float] = field(default=(-6.0, 6.0), metadata={"help": "random gain range in dB (training)"})
    freq_masks: int = field(default=1, metadata={"help": "SpecAugment frequency masks (training)"})
    freq_mask_width: int = field(default=6, metadata={"help": "max width of a frequency mask, bins"})
    time_masks: int = field(default=1, metadata={"help": "SpecAugment time masks (training)"})
    time_mask_width: int = field(default=15, metadata={"help": "max width of a time mask, frames"})


class LogMel(torch.nn.Module):
    """Waveform [n] -> standardised log-mel [1, n_mels, frames]."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        win = int(round(cfg.rate * cfg.win_ms / 1000))
        hop = int(round(cfg.rate * cfg.hop_ms / 1000))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.rate, n_fft=win, win_length=win, hop_length=hop, n_mels=cfg.n_mels)
        self.db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = self.db(self.mel(wave) + 1e-10)
        # per-clip standardisation: loudness differences between corpora do not leak in
        spec = (spec - spec.mean()) / (spec.std() + 1e-5)
        return spec.unsqueeze(0)


def jitter_wave(wave: np.ndarray, cfg: AudioConfig, rng: np.random.Generator) -> np.ndarray:
    gain = rng.uniform(*cfg.volume) * 10 ** (rng.uniform(*cfg.gain_db) / 20)
    return np.clip(wave * gain, -1.0, 1.0)


def spec_augment(spec: torch.Tensor, cfg: AudioConfig, rng: np.random.Generator) -> torch.Tensor:
    """Zero (= the mean after standardisation) random bands of frequency and time."""
    spec = spec.clone()
    n_mels, frames = spec.shape[-2:]
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, cfg.freq_mask_width + 1))
        start = int(rng.integers(0, max(n_mels - width, 0) + 1))
        spec[..., start:start + width, :] = 0
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, cfg.time_mask_width + 1))
        start = int(rng.integers(0, max(frames - width, 0) + 1))
        spec[..., start:start + width] = 0
    return spec
