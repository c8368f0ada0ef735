"""Cross-modal InfoNCE (CLIP/MMV-style: video-audio, video-text); its section is ``nce:``."""
from __future__ import annotations

from pipeline.objectives.nce import CrossModalNCE, NCEConfig
from pipeline.train.method import SharedSettings
from pipeline.train.methods.contrastive import Contrastive, check_views


class CLIPMethod(Contrastive):
    def __init__(self, cfg: NCEConfig, shared: SharedSettings):
        check_views(shared.loader, {"positions": 1, "copies": 1, "reverse": False}, "clip")
        super().__init__(shared.model, CrossModalNCE(cfg))


Config, Method = NCEConfig, CLIPMethod
