"""Contrastive methods: GDT (audio-visual, with time transformations), cross-modal
InfoNCE (CLIP/MMV-style: video-audio, video-text) and SimCLR (within a modality)."""
from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.models.av_model import AVModel
from pipeline.objectives.gdt import GDT
from pipeline.objectives.nce import CrossModalNCE
from pipeline.objectives.simclr import SimCLR
from pipeline.train.method import Method


def check_views(cfg, want: dict, who: str) -> None:
    """The loader must produce the views the objective expects; say which keys to set."""
    have = {k: getattr(cfg.loader.clip, k) for k in want}
    if have != want:
        fix = " ".join(f"loader.clip.{k}={str(v).lower()}" for k, v in want.items() if have[k] != v)
        raise ConfigError(f"{who}: the loader's views {have} do not match the objective; set {fix}")


class _Contrastive(Method):
    def __init__(self, cfg, objective):
        super().__init__()
        self.model = AVModel(cfg.model)
        self.objective = objective

    def forward(self, batch):
        return self.objective(self.model(batch))


class GDTMethod(_Contrastive):
    def __init__(self, cfg):
        check_views(cfg, cfg.gdt.loader_clip(), f"gdt(reversal={cfg.gdt.reversal}, shift={cfg.gdt.shift})")
        super().__init__(cfg, GDT(cfg.gdt))


class CLIPMethod(_Contrastive):
    def __init__(self, cfg):
        check_views(cfg, {"positions": 1, "copies": 1, "reverse": False}, "clip")
        super().__init__(cfg, CrossModalNCE(cfg.nce))


class SimCLRMethod(_Contrastive):
    def __init__(self, cfg):
        check_views(cfg, {"positions": 1, "copies": 2, "reverse": False}, "simclr")
        super().__init__(cfg, SimCLR(cfg.simclr))
