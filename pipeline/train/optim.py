"""Optimiser and learning-rate schedule: AdamW or SGD, linear warm-up then cosine."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class OptimConfig:
    name: str = field(default="adamw", metadata={"help": "adamw | sgd", "choices": ["adamw", "sgd"]})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (per the reference batch, see scale_lr)", "above": 0})
    weight_decay: float = field(default=1e-5, metadata={"help": "weight decay (not on biases and norms)", "min": 0})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum", "min": 0, "max": 1})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW betas", "min": 0, "below": 1})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps", "min": 0})
    min_lr_ratio: float = field(default=0.01, metadata={"help": "final lr as a fraction of the peak (cosine)", "min": 0, "max": 1})
    scale_lr: bool = field(default=False, metadata={"help": "multiply lr by the world size (GDT's linear scaling)"})


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, world_size: int) -> torch.optim.Optimizer:
    lr = cfg.lr * (world_size if cfg.scale_lr else 1)
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas))
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    raise ValueError(f"optim.name: unknown optimizer {cfg.name!r}; choose adamw or sgd")


def warmup_cosine(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min((step - cfg.warmup_steps) / max(total_steps - cfg.warmup_steps, 1), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
