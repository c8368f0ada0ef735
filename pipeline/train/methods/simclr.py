"""SimCLR within a modality: two augmented copies of each clip are positives (NT-Xent);
its section is ``simclr:``. The smallest method: copy this file to add one."""
from __future__ import annotations

from pipeline.objectives.simclr import SimCLR, SimCLRConfig
from pipeline.train.method import SharedSettings
from pipeline.train.methods.contrastive import Contrastive, check_views


class SimCLRMethod(Contrastive):
    def __init__(self, cfg: SimCLRConfig, shared: SharedSettings):
        check_views(shared.loader, {"positions": 1, "copies": 2, "reverse": False}, "simclr")
        super().__init__(shared.model, SimCLR(cfg))


Config, Method = SimCLRConfig, SimCLRMethod
