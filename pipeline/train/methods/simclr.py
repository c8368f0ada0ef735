"""SimCLR within a modality: two augmented copies of each clip are positives (NT-Xent);
its section is ``simclr:``. The smallest method: copy this file to add one."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.objectives.simclr import SimCLR, SimCLRConfig
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import SharedSettings
from pipeline.train.methods.contrastive import Contrastive, check_views


class SimCLRMethod(Contrastive):
    def __init__(self, cfg: SimCLRConfig, shared: SharedSettings):
        check_views(shared.loader, {"positions": 1, "copies": 2, "reverse": False}, "simclr")
        super().__init__(shared.model, SimCLR(cfg))


Config, Method = SimCLRConfig, SimCLRMethod


@dataclass
class RunConfig(TrainConfig):
    """A SimCLR training run: the engine's settings plus ``simclr:``."""
    method: str = method_field("simclr")
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
