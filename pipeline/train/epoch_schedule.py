"""GDT's fine-tuning learning-rate schedule as its code runs it (``optim.schedule: gdt``).

GDT's ``eval_video.py`` wraps a MultiStepLR in a gradual warm-up scheduler and calls the
pair once per epoch, after the epoch's optimizer steps. What that does, including its
quirks, is what the paper's numbers were trained with, so this form reproduces it:

- the lr is constant within an epoch (it moves between epochs, not per step);
- warm-up: epoch e <= W has lr x ((multiplier - 1) e / W + 1), so with multiplier 8 and
  W = 2 the head runs 0.0025, 0.01125, then 0.02: the configured lr is the *start* of
  the warm-up and the peak is ``multiplier`` times it;
- after the warm-up the MultiStepLR only begins counting one epoch late, so a milestone
  m (in epochs) takes effect at epoch m + 1 (``milestones: [6, 10]`` drops at 7 and 11);
- the drops are chained multiplications of the current lr (``lr * gamma``, then again),
  which differs from ``lr * gamma**2`` in the last bit; replayed here in the same order,
  so the values are bit-equal (``tests/parity/test_finetune_schedule.py``).

With W = 0 the official code uses the MultiStepLR alone (no multiplier, drops at m).
The clean alternatives are ``schedule: step`` (per-step linear warm-up to lr, drops at
the milestones) and ``cosine``.
"""
from __future__ import annotations

from collections import Counter

import torch

from pipeline.errors import ConfigError


def epoch_lr(base: float, epoch: int, warmup: int, milestones: list[int], gamma: float,
             multiplier: float) -> float:
    """The lr GDT's scheduler pair gives a group with initial lr ``base`` during ``epoch``."""
    counts = sorted(Counter(milestones).items())
    if warmup == 0:  # eval_video.py: MultiStepLR alone
        lr = base
        for m, n in counts:
            if epoch >= m:
                lr = lr * gamma ** n
        return lr
    if epoch <= warmup:
        if multiplier == 1.0:
            return base * (float(epoch) / warmup)
        return base * ((multiplier - 1.) * epoch / warmup + 1.)
    lr = epoch_lr(base, warmup, warmup, milestones, gamma, multiplier)  # the group's lr when the warm-up hands over
    after = epoch - warmup - 1  # the MultiStepLR's own epoch count starts one epoch after the warm-up
    for m, n in counts:
        if after >= m - warmup:
            lr = lr * gamma ** n
    return lr


class EpochSchedule(torch.optim.lr_scheduler.LRScheduler):
    """Per optimizer step, the lr of the step's epoch (``step // steps_per_epoch``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, warmup_epochs: int,
                 milestones: list[int], gamma: float, multiplier: float):
        self.steps_per_epoch, self.warmup_epochs = steps_per_epoch, warmup_epochs
        self.epoch_milestones, self.gamma, self.multiplier = list(milestones), gamma, multiplier
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        epoch = self.last_epoch // self.steps_per_epoch
        return [epoch_lr(base, epoch, self.warmup_epochs, self.epoch_milestones, self.gamma, self.multiplier)
                for base in self.base_lrs]


def gdt_schedule(optimizer: torch.optim.Optimizer, cfg) -> EpochSchedule:
    """From ``OptimConfig``: warm-up and milestones in optimizer steps, which must be whole
    epochs of ``cfg.steps_per_epoch`` steps (the finetune stage plans them so)."""
    spe = cfg.steps_per_epoch
    if spe < 1:
        raise ConfigError("optim.steps_per_epoch: schedule gdt moves once per epoch; give the optimizer steps "
                          "per epoch (the finetune stage sets it)")
    if cfg.warmup_steps % spe or any(m % spe for m in cfg.milestones):
        raise ConfigError(f"optim.warmup_steps={cfg.warmup_steps} / optim.milestones={cfg.milestones}: schedule "
                          f"gdt needs whole epochs of {spe} steps (finetune.warmup_epochs and "
                          "finetune.milestones as integers)")
    warmup, milestones = cfg.warmup_steps // spe, [m // spe for m in cfg.milestones]
    if warmup and any(m <= warmup for m in milestones):
        raise ConfigError(f"optim.milestones: schedule gdt needs every milestone after the warm-up "
                          f"({warmup} epochs); got epochs {milestones}")
    if cfg.warmup_multiplier < 1:
        raise ConfigError(f"optim.warmup_multiplier={cfg.warmup_multiplier}: must be >= 1")
    return EpochSchedule(optimizer, spe, warmup, milestones, cfg.gamma, cfg.warmup_multiplier)
