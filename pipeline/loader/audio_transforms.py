"""Log-mel spectrograms (torchaudio) and the audio augmentations of the methods:
volume jitter, random gain and SpecAugment-style time and frequency masks.

The random draws (``draw_gain``, ``draw_spec_masks``) happen per sample in the loader's
workers, from the sample's seeded Generator; applying them (``LogMel``,
``apply_spec_masks``) is batched work for ``DeviceAugment`` on the training device."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torchaudio

from pipeline.errors import ConfigError


@dataclass
class AudioConfig:
    rate: int = field(default=16000, metadata={"help": "sample rate the shards store, Hz", "min": 8000, "max": 192000})
    seconds: float = field(default=1.0, metadata={"help": "audio window length, centred on the clip", "above": 0})
    features: str = field(default="logmel", metadata={
        "help": "logmel: torchaudio log-mel, per-clip standardised (the project's); gdt / selavi: the papers' "
                "python_speech_features logfbank on int16 samples (pre-emphasis, rectangular window, n_fft 1024, "
                "uncentred frames: 99 for 1 s), gdt then z-normalised as GDT's code (audio_features.py)",
        "choices": ["logmel", "gdt", "selavi"]})
    n_mels: int = field(default=40, metadata={"help": "mel bins (filters): GDT 40, SeLaVi 257", "min": 1})
    win_ms: float = field(default=20.0, metadata={"help": "STFT window, ms", "above": 0})
    hop_ms: float = field(default=10.0, metadata={"help": "STFT hop, ms", "above": 0})
    volume: tuple[float, float] = field(default=(0.9, 1.1), metadata={"help": "volume jitter range (training)", "min": 0})
    gain_db: tuple[float, float] = field(default=(-6.0, 6.0), metadata={"help": "random gain range in dB (training)"})
    freq_masks: int = field(default=1, metadata={"help": "SpecAugment frequency masks (training)", "min": 0})
    freq_mask_width: int = field(default=6, metadata={"help": "max width of a frequency mask, bins", "min": 0})
    time_masks: int = field(default=1, metadata={"help": "SpecAugment time masks (training)", "min": 0})
    time_mask_width: int = field(default=15, metadata={"help": "max width of a time mask, frames", "min": 0})

    def check(self) -> None:
        if self.features != "logmel" and self.rate * self.win_ms / 1000 > 1024:
            raise ConfigError(f"the {self.features} features take a 1024-point FFT: a window of "
                              f"{self.win_ms} ms at {self.rate} Hz is longer", key="win_ms")


class LogMel(torch.nn.Module):
    """Waveforms [..., n] -> standardised log-mel [..., 1, n_mels, frames], each clip on
    its own: torchaudio's MelSpectrogram (as its Spectrogram and MelScale halves) and
    AmplitudeToDB. Batches are computed at once: per clip, the torch op overheads cost as
    much as the spectrogram itself."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        win = int(round(cfg.rate * cfg.win_ms / 1000))
        hop = int(round(cfg.rate * cfg.hop_ms / 1000))
        self.stft = torchaudio.transforms.Spectrogram(n_fft=win, win_length=win, hop_length=hop, power=None)
        self.mel = torchaudio.transforms.MelScale(n_mels=cfg.n_mels, sample_rate=cfg.rate, n_stft=win // 2 + 1)
        self.db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        lead = wave.shape[:-1]
        ri = torch.view_as_real(self.stft(wave.reshape(-1, 1, wave.shape[-1])))
        # |z|^2 as re^2 + im^2: a third of torchaudio's abs().pow(2), which takes a root first
        power = torch.addcmul(ri[..., 0].square(), ri[..., 1], ri[..., 1])
        # [N, 1, n_mels, frames]: AmplitudeToDB's top_db floor is then per clip
        spec = self.db(self.mel(power) + 1e-10)
        # per-clip standardisation: loudness differences between corpora do not leak in
        mu, sd = spec.mean(dim=(-2, -1), keepdim=True), spec.std(dim=(-2, -1), keepdim=True)
        return ((spec - mu) / (sd + 1e-5)).reshape(*lead, *spec.shape[1:])


def draw_gain(cfg: AudioConfig, rng: np.random.Generator) -> float:
    """Volume jitter times a random gain (dB), as one factor; the waveform is clipped to
    [-1, 1] after it is applied."""
    return float(rng.uniform(*cfg.volume) * 10 ** (rng.uniform(*cfg.gain_db) / 20))


def draw_spec_masks(cfg: AudioConfig, n_mels: int, frames: int,
                    rng: np.random.Generator | None) -> np.ndarray:
    """SpecAugment bands as (start, width) rows: ``cfg.freq_masks`` frequency bands, then
    ``cfg.time_masks`` time bands; all of width 0 when ``rng`` is None (evaluation).
    Drawn with the sample, applied to the batch by ``apply_spec_masks``."""
    out = np.zeros((cfg.freq_masks + cfg.time_masks, 2), np.int16)
    if rng is None:
        return out
    for i in range(len(out)):
        size, limit = (n_mels, cfg.freq_mask_width) if i < cfg.freq_masks else (frames, cfg.time_mask_width)
        width = int(rng.integers(0, limit + 1))
        out[i] = int(rng.integers(0, max(size - width, 0) + 1)), width
    return out


def apply_spec_masks(spec: torch.Tensor, masks: torch.Tensor, freq_masks: int) -> torch.Tensor:
    """Zero (= the mean after standardisation) the bands ``masks`` [N, M, 2] name in
    ``spec`` [N, 1, n_mels, frames], in place; the first ``freq_masks`` are frequency bands."""
    n_mels, frames = spec.shape[-2:]

    def band(rows: torch.Tensor, size: int) -> torch.Tensor:  # [N, size]: inside any band
        at = torch.arange(size, device=spec.device)[None, None, :]
        start, width = rows[..., 0:1], rows[..., 1:2]
        return ((at >= start) & (at < start + width)).any(dim=1)

    hit = band(masks[:, :freq_masks], n_mels)[:, :, None] | band(masks[:, freq_masks:], frames)[:, None, :]
    return spec.masked_fill_(hit[:, None], 0.0)
