"""``DeviceAugment``: a loader batch (uint8 video, int16 waveforms, augmentation
parameters drawn by the workers) -> the models' input, in batched torch ops on whatever
device the module is on.

Why on the device: colour jitter, normalisation, log-mel and SpecAugment are per-pixel
or per-sample maths that a GPU does for a whole batch in microseconds, where a worker
spends milliseconds per clip on the CPU and ships 4 x the bytes as float. Every
consumer of loader batches (training engine, evaluation, SeLaVi labelling, detection)
calls it the same way: ``batch = augment(batch)`` right after taking the batch.

It draws nothing at random: every parameter came from the worker's seeded Generator,
so the output is a function of the batch, and a resumed run gets the same input.

Output (as the models take it): ``video`` float [B, V, 3, T, S, S] normalised,
``audio`` float [B, V, 1, n_mels, frames] features (``audio.features``), ``boxes`` [B, V, T, 4],
``text`` / ``text_len`` / ``label`` int64, ``has_audio`` bool, ``start`` [B, positions]
seconds; ``key`` and ``skipped`` as they came. V orders views (position, copy,
direction) as ``sample.view_layout``; reversed views are their source played backwards.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline.loader.audio_features import AudioFeatures
from pipeline.loader.audio_transforms import AudioConfig, apply_spec_masks
from pipeline.loader.colour_jitter import ColourAffine, normalised_affine
from pipeline.loader.sample import ClipConfig
from pipeline.loader.video_transforms import VideoAugConfig

PASSED = ("key", "skipped")  # carried through untouched
INTEGERS = ("text", "text_len", "label")


class DeviceAugment(torch.nn.Module):
    def __init__(self, clip: ClipConfig, video: VideoAugConfig, audio: AudioConfig,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.reverse, self.mean, self.std = clip.reverse, tuple(video.mean), tuple(video.std)
        self.freq_masks = audio.freq_masks
        self.dtype = dtype  # of video and audio (e.g. bf16 training); None keeps float32
        self.colour = ColourAffine()
        self.features = AudioFeatures(audio)

    @classmethod
    def from_loader(cls, cfg, dtype: torch.dtype | None = None) -> "DeviceAugment":
        """Built from a ``LoaderConfig`` (the one that made the batches)."""
        return cls(cfg.clip, cfg.video, cfg.audio, dtype)

    @property
    def device(self) -> torch.device:
        return self.colour.luma.device

    def _in(self, x) -> torch.Tensor:
        """A batch field on this module's device (numpy fields become tensors here)."""
        x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        return x.to(self.device, non_blocking=True)

    def _views(self, x: torch.Tensor, time_dim: int) -> torch.Tensor:
        """[B, P, ...] source views -> [B, V, ...], each reversed view (``time_dim``
        flipped) right after its source."""
        if not self.reverse:
            return x
        return torch.stack([x, x.flip(time_dim)], dim=2).flatten(1, 2)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.dtype is None else x.to(self.dtype)

    def video(self, video: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """uint8 [B, P, T, S, S, 3] -> normalised float [B, P, 3, T, S, S]: each clip's
        jitter composed with normalisation into one affine map, one batched product."""
        b, p, t, h, w, _ = video.shape
        n = b * p
        x = video.reshape(n, t * h * w, 3)
        mean_rgb = x.sum(dim=1, dtype=torch.int64).double() / (t * h * w * 255.0)
        m, off, lo, hi = normalised_affine(*self.colour(factors.reshape(n, 4), order.reshape(n, 4), mean_rgb),
                                           self.mean, self.std)
        planes = x.transpose(1, 2).to(torch.float32, memory_format=torch.contiguous_format)  # [N, 3, L]
        out = torch.baddbmm(off.float()[:, :, None], m.float(), planes)
        out = out.clamp_(lo.float()[None, :, None], hi.float()[None, :, None])
        return out.reshape(b, p, 3, t, h, w)

    def audio(self, wave: torch.Tensor, gain: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """int16 [B, P, n] with gains [B, P] and SpecAugment bands [B, P, M, 2] ->
        features [B, P, 1, n_mels, frames] (log-mel, or the papers' ``gdt`` / ``selavi``)."""
        b, p, n = wave.shape
        spec = self.features(wave.reshape(b * p, n), gain.reshape(b * p))
        spec = apply_spec_masks(spec, masks.reshape(b * p, *masks.shape[2:]), self.freq_masks)
        return spec.reshape(b, p, *spec.shape[1:])

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        out = {k: batch[k] for k in PASSED if k in batch}
        if "video" in batch:
            video = self.video(self._in(batch["video"]), self._in(batch["jitter"]),
                               self._in(batch["jitter_order"]))
            out["video"] = self._out(self._views(video, -3))
            out["boxes"] = self._views(self._in(batch["boxes"]), -2)
        if "wave" in batch:
            audio = self.audio(self._in(batch["wave"]), self._in(batch["gain"]), self._in(batch["spec_masks"]))
            out["audio"] = self._out(self._views(audio, -1))
        for k in INTEGERS:
            out[k] = self._in(batch[k]).long()
        out["has_audio"] = self._in(batch["has_audio"]).bool()
        out["start"] = self._in(batch["start"]).float()
        return out
