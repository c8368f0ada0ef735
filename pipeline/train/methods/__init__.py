"""The training methods by name: one module each, exporting ``Config`` (its section),
``Method`` and ``RunConfig`` (``TrainConfig`` plus its section under ``section`` and the
sections it ``uses``).

Adding a method is one module (copy ``simclr.py``) and one line in ``METHODS``;
``build_method`` constructs ``Method(config_section, shared_settings, **other_sections)``.
``uses`` names other methods' sections a method reads (SeLaVi adds the GDT loss).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pipeline.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    module: str  # exports Config, Method and RunConfig
    section: str  # the run config's key holding this method's Config (YAML shape)
    uses: tuple[str, ...] = ()  # further sections passed by name to Method

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: Registry[MethodSpec] = Registry("method", {
    "gdt": MethodSpec("pipeline.train.methods.gdt", section="gdt"),
    "simclr": MethodSpec("pipeline.train.methods.simclr", section="simclr"),
    "clip": MethodSpec("pipeline.train.methods.clip", section="nce"),
    "selavi": MethodSpec("pipeline.train.methods.selavi", section="selavi", uses=("gdt",)),
    "avloc": MethodSpec("pipeline.train.methods.avloc", section="avloc"),
    "finetune": MethodSpec("pipeline.train.methods.finetune", section="finetune"),
})


def build_method(cfg: Any, name: str | None = None):
    """The method ``name`` (default ``cfg.method``) of a run config, given only its own
    section, the sections it ``uses`` and the shared settings."""
    from pipeline.train.method import SharedSettings

    spec = METHODS[name or cfg.method]
    shared = SharedSettings(model=cfg.model, loader=cfg.loader, steps=cfg.steps, out=cfg.out)
    others = {s: getattr(cfg, s) for s in spec.uses}
    return spec.load().Method(getattr(cfg, spec.section), shared, **others)
