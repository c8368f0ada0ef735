"""GDT (Patrick et al. 2021): cross-modal contrastive learning over compositions of time
transformations; the objective is ``pipeline.objectives.gdt``, its section ``gdt:``."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.objectives.gdt import GDT, GDTConfig
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import SharedSettings
from pipeline.train.methods.contrastive import Contrastive, check_views


class GDTMethod(Contrastive):
    def __init__(self, cfg: GDTConfig, shared: SharedSettings):
        check_views(shared.loader, cfg.loader_clip(), f"gdt(reversal={cfg.reversal}, shift={cfg.shift})")
        super().__init__(shared.model, GDT(cfg))


Config, Method = GDTConfig, GDTMethod


@dataclass
class RunConfig(TrainConfig):
    """A GDT training run: the engine's settings plus ``gdt:``."""
    method: str = method_field("gdt")
    gdt: GDTConfig = field(default_factory=GDTConfig)
