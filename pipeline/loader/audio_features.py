"""The audio features of the GDT and SeLaVi papers (``loader.audio.features: gdt |
selavi``), batched in torch on the training device, equal to the authors' code.

Both official data loaders call python_speech_features 0.6's ``logfbank`` on the int16
waveform (ffmpeg's s16le samples, times the volume jitter, not rescaled, not clipped):
pre-emphasis 0.97, frames of ``win_ms`` every ``hop_ms`` without centring (the last frame
zero-padded: 1 s at 24 kHz gives 99 frames of 480 samples), no window function
(rectangular), a 1024-point FFT, power / 1024, a filterbank of ``n_mels`` triangles on
FFT bins floored from mel points, exact zeros replaced by float64 epsilon, natural log,
float32. GDT (``aud_spec_type=1``, ``z_normalize=True``) uses 40 filters and then
(x - 1.93) / 17.89; SeLaVi (``aud_spec_type=2``, ``z_normalize=False``) 257 filters and
no normalisation. SpecAugment bands (``apply_spec_masks``) are zeroed after it, as GDT does.

Why written out here: no library computes this variant. torchaudio's and librosa's mel
filterbanks interpolate triangles on continuous frequencies (HTK or Slaney), where
``logfbank`` floors the corners to FFT bins, which leaves some of SeLaVi's 257 filters
empty (38 of them at 24 kHz: rows of log(eps) = -36.04 in its input); their spectrograms
window and centre the frames; torchaudio's Kaldi ``fbank`` has the pre-emphasis and a
rectangular window, but Kaldi's continuous triangles and a DC-offset removal. Calling python_speech_features itself would put numpy and
a per-clip CPU loop back into the loader. The maths runs in float64, as numpy runs it:
with the same float64 volume factor the features then equal the official ones bit for bit
on CPU (tests/parity/test_audio_features.py); in float32 SeLaVi's narrow filters move by up
to 7e-4 (a quiet bin is lost beside the loudest in a float32 FFT) and the float32 floor
differs from log(float64 eps). It costs little: one 99 x 1024 FFT per clip.
"""
from __future__ import annotations

import decimal
import math

import torch

from pipeline.loader.audio_transforms import AudioConfig, LogMel

N_FFT = 1024  # both official get_spec calls pass nfft=1024, whatever the window
PREEMPHASIS = 0.97  # logfbank's default, which the official calls keep
Z_MEAN, Z_STD = 1.93, 17.89  # GDT's z_normalize constants
EPS = torch.finfo(torch.float64).eps  # numpy.finfo(float).eps: logfbank's floor for a zero energy
LOGFBANK = {"gdt": True, "selavi": False}  # features -> z-normalised


def samples(rate: int, ms: float) -> int:
    """A window or hop in samples, rounded half up as ``logfbank`` rounds it."""
    return int(decimal.Decimal(rate * ms / 1000).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def frame_count(n: int, win: int, hop: int) -> int:
    """Frames of ``logfbank`` for ``n`` samples: one if the signal is no longer than a
    window, else enough to cover it (the last one zero-padded)."""
    return 1 if n <= win else 1 + math.ceil((n - win) / hop)


def feature_shape(cfg: AudioConfig) -> tuple[int, int]:
    """(bins, frames) of one clip's features: what the audio model gets as [1, bins, frames]."""
    n = int(round(cfg.seconds * cfg.rate))
    if cfg.features == "logmel":
        win, hop = int(round(cfg.rate * cfg.win_ms / 1000)), int(round(cfg.rate * cfg.hop_ms / 1000))
        return cfg.n_mels, 1 + (n + 2 * (win // 2) - win) // hop  # torch.stft's centred frames
    return cfg.n_mels, frame_count(n, samples(cfg.rate, cfg.win_ms), samples(cfg.rate, cfg.hop_ms))


def filterbank(n_filters: int, rate: int, n_fft: int = N_FFT) -> torch.Tensor:
    """[n_filters, n_fft // 2 + 1] float64 triangles of ``logfbank`` (0 Hz to rate / 2):
    corners at bins floor((n_fft + 1) * hz / rate) of mel points spaced evenly (numpy's
    linspace: start + i * step, the last point the end itself); a filter rises from 0 at
    its left corner and falls to 0 at its right one, both excluded."""
    high = 2595 * math.log10(1 + (rate / 2) / 700.0)
    step = high / (n_filters + 1)
    mels = [i * step for i in range(n_filters + 1)] + [high]
    edges = torch.tensor([math.floor((n_fft + 1) * (700 * (10 ** (m / 2595.0) - 1)) / rate) for m in mels],
                         dtype=torch.float64)
    left, top, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    i = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[None, :]
    rise = torch.where((i >= left) & (i < top), (i - left) / (top - left).clamp(min=1), 0.0)
    fall = torch.where((i >= top) & (i < right), (right - i) / (right - top).clamp(min=1), 0.0)
    return rise + fall  # the two ranges are disjoint


class LogFilterbank(torch.nn.Module):
    """int16 waveforms [N, n] and volume factors [N] -> float32 [N, 1, n_mels, frames]:
    python_speech_features' ``logfbank`` as the official GDT / SeLaVi loaders call it
    (module docstring), optionally with GDT's z-normalisation."""

    def __init__(self, cfg: AudioConfig, z_normalize: bool):
        super().__init__()
        self.win, self.hop = samples(cfg.rate, cfg.win_ms), samples(cfg.rate, cfg.hop_ms)
        self.z_normalize = z_normalize
        self.register_buffer("fb_t", filterbank(cfg.n_mels, cfg.rate).T.contiguous(), persistent=False)

    def forward(self, wave: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        x = wave.to(torch.float64) * gain.to(torch.float64)[:, None]  # int16 scale, unclipped
        x = torch.cat([x[:, :1], x[:, 1:] - PREEMPHASIS * x[:, :-1]], dim=1)
        n = x.shape[1]
        frames = frame_count(n, self.win, self.hop)
        x = torch.nn.functional.pad(x, (0, (frames - 1) * self.hop + self.win - n))
        power = torch.fft.rfft(x.unfold(1, self.win, self.hop), n=N_FFT).abs().square() / N_FFT
        feat = power @ self.fb_t  # [N, frames, n_mels]
        feat = torch.where(feat == 0, EPS, feat)
        out = feat.log().to(torch.float32).transpose(1, 2)[:, None]
        return (out - Z_MEAN) / Z_STD if self.z_normalize else out


class AudioFeatures(torch.nn.Module):
    """int16 waveforms [N, n] and gains [N] -> features [N, 1, bins, frames], in the form
    ``cfg.features`` names: ``logmel`` (the project's; the waveform scaled to [-1, 1],
    gained and clipped first), ``gdt`` or ``selavi`` (the papers': ``LogFilterbank``)."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.kind = cfg.features
        self.net = LogMel(cfg) if self.kind == "logmel" else LogFilterbank(cfg, LOGFBANK[self.kind])

    def forward(self, wave: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        if self.kind == "logmel":
            return self.net((wave.float() / 32768.0 * gain.float()[:, None]).clamp_(-1.0, 1.0))
        return self.net(wave, gain)
