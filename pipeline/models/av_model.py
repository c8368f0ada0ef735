"""The multimodal model: a backbone + projection head per modality, built from ``ModelConfig``.

It takes the loader's batch dict and returns a dict of embeddings, so the training
engine needs to know neither the method nor the modalities: ``out = model(batch)``,
then ``loss, metrics = objective(out)``.

Batch layout (the loader's): ``video`` [B, C, T, H, W] or with a view axis
[B, V, C, T, H, W]; ``audio`` [B, 1, F, T] or [B, V, 1, F, T]; ``text`` [B, L] with
``text_len`` [B]. Views are flattened into the batch for the backbone and restored, so
``out["video"]`` is [B, D] or [B, V, D]. Modalities missing from the batch (or without a
tower) are left out of the output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import BUILDERS, available

# per-sample input rank of each modality (without batch and view axes)
_SAMPLE_DIMS = {"video": 4, "audio": 3, "text": 1}


@dataclass
class TowerConfig:
    name: str = field(default="", metadata={"help": "registry name of the backbone; empty = no tower"})
    args: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "overrides of the backbone's config fields, e.g. {widths: [8, 16, 32, 64]}"})


@dataclass
class ModelConfig:
    video: TowerConfig = field(default_factory=lambda: TowerConfig("r2plus1d_18"), metadata={
        "help": f"video backbone: {', '.join(available('video'))}"})
    audio: TowerConfig = field(default_factory=lambda: TowerConfig("resnet9"), metadata={
        "help": f"audio backbone: {', '.join(available('audio'))}"})
    text: TowerConfig = field(default_factory=TowerConfig, metadata={
        "help": f"text encoder: {', '.join(available('text'))} (empty = none)"})
    embed_dim: int = field(default=256, metadata={"help": "output size of every projection head", "min": 1})
    head_hidden: int = field(default=0, metadata={"help": "hidden width of the heads; 0 = backbone width", "min": 0})
    normalize: bool = field(default=True, metadata={"help": "L2-normalise the embeddings"})
    head_dropout: float = field(default=0.0, metadata={
        "help": "dropout before each Linear of the heads, in training only (official GDT: 0.3)",
        "min": 0, "below": 1})


class AVModel(nn.Module):
    """Backbones (``self.backbones``) and heads (``self.heads``) keyed by modality."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbones = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for mod in ("video", "audio", "text"):
            tower: TowerConfig = getattr(cfg, mod)
            if not tower.name:
                continue
            net = BUILDERS[mod](tower.name, **dict(tower.args))
            self.backbones[mod] = net
            self.heads[mod] = ProjectionHead(net.out_dim, cfg.embed_dim, cfg.head_hidden or None, cfg.normalize,
                                             cfg.head_dropout)

    @property
    def modalities(self) -> list[str]:
        return list(self.backbones)

    def _views(self, mod: str, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Flatten [B, V, ...] to [B*V, ...]; return the leading shape to restore."""
        lead = x.dim() - _SAMPLE_DIMS[mod]
        if lead not in (1, 2):
            raise ValueError(f"batch[{mod!r}]: expected {_SAMPLE_DIMS[mod] + 1} or {_SAMPLE_DIMS[mod] + 2} "
                             f"dims ([B, ...] or [B, V, ...]), got shape {tuple(x.shape)}")
        return x.reshape(-1, *x.shape[lead:]), tuple(x.shape[:lead])

    def forward(self, batch: Mapping[str, Any], maps: bool = False,
                features: bool = False) -> dict[str, torch.Tensor]:
        """Embeddings per modality; with ``maps``, also ``video_map`` = the backbone's
        [B(, V), D, T', H', W'] features before pooling (for per-location scores); with
        ``features``, also ``<modality>_feat`` = the pooled backbone features."""
        out: dict[str, torch.Tensor] = {}
        for mod, net in self.backbones.items():
            if mod not in batch:
                continue
            x, lead = self._views(mod, batch[mod])
            if mod == "text":
                lengths = batch.get("text_len")
                if lengths is not None and len(lead) == 2:
                    lengths = lengths.reshape(-1)
                feat = net(x, lengths)
            else:
                fmap = net.forward_features(x)
                feat = net.pool(fmap)
                if maps and mod == "video":
                    out["video_map"] = fmap.reshape(*lead, *fmap.shape[1:])
            if features:
                out[f"{mod}_feat"] = feat.reshape(*lead, -1)
            out[mod] = self.heads[mod](feat).reshape(*lead, -1)
        return out
