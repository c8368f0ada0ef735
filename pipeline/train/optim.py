"""Optimiser and learning-rate schedule: AdamW or SGD; linear warm-up, then cosine decay
or step decay at milestones (the fine-tuning protocols' schedule), or GDT's per-epoch
fine-tuning schedule as its code runs it (``pipeline.train.epoch_schedule``). A method may give
parts of itself their own learning rate (``Method.lr_scale``: fine-tuning trains a new
head faster than the pretrained backbone)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pipeline.train.epoch_schedule import gdt_schedule


@dataclass
class OptimConfig:
    name: str = field(default="adamw", metadata={"help": "adamw | sgd", "choices": ["adamw", "sgd"]})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (per the reference batch, see scale_lr)", "above": 0})
    weight_decay: float = field(default=1e-5, metadata={"help": "weight decay (not on biases and norms unless decay_all)", "min": 0})
    decay_all: bool = field(default=False, metadata={"help": "weight decay on every parameter, biases and norms too (GDT's fine-tuning); false: not on biases and norms"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "min": 0, "max": 1})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW betas", "min": 0, "below": 1})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps", "min": 0})
    min_lr_ratio: float = field(default=0.01, metadata={"help": "final lr as a fraction of the peak (cosine)", "min": 0, "max": 1})
    scale_lr: bool = field(default=False, metadata={"help": "multiply lr by the world size (GDT's linear scaling)"})
    schedule: str = field(default="cosine", metadata={"help": "after warm-up: cosine (to min_lr_ratio) | step (x gamma at each milestone) | gdt (GDT's fine-tuning scheduler as it runs: per epoch, warm-up from lr to lr x warmup_multiplier, drops one epoch after each milestone)", "choices": ["cosine", "step", "gdt"]})
    milestones: list[int] = field(default_factory=list, metadata={"help": "step schedule: optimizer steps at which the lr is multiplied by gamma", "min": 0})
    gamma: float = field(default=0.1, metadata={"help": "step schedule: lr factor at each milestone", "above": 0, "max": 1})
    warmup_multiplier: float = field(default=8.0, metadata={"help": "gdt schedule: the warm-up ends at lr x this (GDT: 8)", "min": 1})
    steps_per_epoch: int = field(default=0, metadata={"help": "gdt schedule: optimizer steps per epoch (the finetune stage sets it)", "min": 0})


def param_groups(model: torch.nn.Module, weight_decay: float, lr: float, decay_all: bool = False) -> list[dict]:
    """Groups by (decayed or not, lr): no decay on biases and norms unless ``decay_all``;
    each parameter's lr is ``lr`` times the model's ``lr_scale(name)`` when it has one."""
    scale = getattr(model, "lr_scale", lambda name: 1.0)
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = decay_all or not (p.ndim <= 1 or name.endswith(".bias"))
        groups.setdefault((decay, float(scale(name))), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr": lr * s}
            for (decay, s), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, world_size: int) -> torch.optim.Optimizer:
    lr = cfg.lr * (world_size if cfg.scale_lr else 1)
    groups = param_groups(model, cfg.weight_decay, lr, cfg.decay_all)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    raise ValueError(f"optim.name: unknown optimizer {cfg.name!r}; choose adamw or sgd")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    if cfg.schedule == "cosine":
        return warmup_cosine(optimizer, cfg, total_steps)
    if cfg.schedule == "step":
        return warmup_step(optimizer, cfg)
    if cfg.schedule == "gdt":
        return gdt_schedule(optimizer, cfg)
    raise ValueError(f"optim.schedule: unknown schedule {cfg.schedule!r}; choose cosine, step or gdt")


def warmup_step(optimizer: torch.optim.Optimizer, cfg: OptimConfig):
    """Linear warm-up, then the lr times gamma^(milestones passed) (torch's MultiStepLR
    after a warm-up, as one LambdaLR so a checkpoint holds a single schedule state)."""
    milestones = sorted(cfg.milestones)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return cfg.gamma ** sum(step >= m for m in milestones)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_cosine(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min((step - cfg.warmup_steps) / max(total_steps - cfg.warmup_steps, 1), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
