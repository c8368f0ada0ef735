"""Cross-modal InfoNCE (CLIP/MMV-style: video-audio, video-text); its section is ``nce:``."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.objectives.nce import CrossModalNCE, NCEConfig
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import SharedSettings
from pipeline.train.methods.contrastive import Contrastive, check_views


class CLIPMethod(Contrastive):
    def __init__(self, cfg: NCEConfig, shared: SharedSettings):
        check_views(shared.loader, {"positions": 1, "copies": 1, "reverse": False}, "clip")
        super().__init__(shared.model, CrossModalNCE(cfg))


Config, Method = NCEConfig, CLIPMethod


@dataclass
class RunConfig(TrainConfig):
    """A CLIP / MMV training run: the engine's settings plus ``nce:``."""
    method: str = method_field("clip")
    nce: NCEConfig = field(default_factory=NCEConfig)
