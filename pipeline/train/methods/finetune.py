"""Supervised fine-tuning of a pretrained video backbone (GDT's downstream protocol).

The exported backbone (or the same architecture at random initialisation, the
baseline) gets a new linear classifier; both train on labelled clips with their own
learning rates (the head faster, ``backbone_lr_scale``); ``head_init: orthogonal`` is
GDT's classifier init. The method trains one random
clip per sample per step; how many steps make an epoch, the warm-up and the milestones
are planned by the ``finetune`` stage (``pipeline.finetune.stage``) from the fields
below, and testing (10 clips x 3 crops per video) is done there too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.load import load_backbone
from pipeline.models.export_spec import has_spec, spec_path
from pipeline.train.config import TrainConfig, method_field
from pipeline.train.method import Method as BaseMethod, SharedSettings


@dataclass
class Config:
    backbone: str = field(default="", metadata={"help": "export folder (its video/ backbone) or a finished pretraining run folder"})
    pretrained: bool = field(default=True, metadata={"help": "false: the same architecture at random initialisation (the baseline)"})
    classes: int = field(default=0, metadata={"help": "classifier outputs; 0 = the classes of the training shards' index.json", "min": 0})
    backbone_lr_scale: float = field(default=0.1, metadata={"help": "backbone lr = optim.lr x this (GDT: head 0.0025, backbone 0.00025)", "min": 0})
    dropout: float = field(default=0.0, metadata={"help": "dropout before the linear head", "min": 0, "below": 1})
    match_export: bool = field(default=True, metadata={"help": "clip frames, stride and crop size as the export was trained with (false: the recipe's loader.clip / loader.video); normalisation always follows the export"})
    splits: list[str] = field(default_factory=list, metadata={"help": "shard roots, one per split, each with train/ and test/ (UCF101/HMDB51 split=1..3)"})
    only: int = field(default=-1, metadata={"help": "run only this split (0-based; one array task each); -1: every split, then the mean", "min": -1})
    epochs: float = field(default=12.0, metadata={"help": "epochs over the training videos", "above": 0})
    clips_per_video: int = field(default=10, metadata={"help": "random clips drawn per training video per epoch", "min": 1})
    warmup_epochs: float = field(default=2.0, metadata={"help": "linear warm-up, epochs", "min": 0})
    milestones: list[float] = field(default_factory=lambda: [6.0, 10.0], metadata={"help": "epochs at which the lr drops by optim.gamma", "min": 0})
    test_clips: int = field(default=10, metadata={"help": "uniformly spaced clips per test sample (video-level accuracy)", "min": 1})
    test_crops: int = field(default=3, metadata={"help": "spatial crops per clip: 1 (centre) or 3 (left, centre, right)", "choices": [1, 3]})
    test_resize: int = field(default=0, metadata={"help": "side of the centre square the test crops are cut from; 0 = crop size x 8/7 (128 for 112)", "min": 0})
    test_batch_size: int = field(default=4, metadata={"help": "test samples per batch (each carries test_clips views)", "min": 1})
    head_init: str = field(default="default", metadata={"help": "classifier init: default (torch's Linear) | orthogonal (weight orthogonal, gain 1, bias 0: GDT's eval_video.py)", "choices": ["default", "orthogonal"]})
    aggregate: str = field(default="softmax", metadata={"help": "video-level score: mean over the views of softmax | logits (GDT's eval_video.py averages the logits)", "choices": ["softmax", "logits"]})
    test_epochs: list[int] = field(default_factory=list, metadata={"help": "0-based epochs after which the test split is also scored; the best of them is reported beside the final epoch, marked as selected on the test split (GDT's eval_video.py: 7-11); [] = the final epoch only", "min": 0})
    drop_last: bool = field(default=False, metadata={"help": "an epoch is floor(videos x clips_per_video / batch) steps, as GDT's loader drops the last partial batch; false: rounded up"})
    pixel_mean: list[float] = field(default_factory=list, metadata={"help": "per-channel pixel mean for train and test views; [] = the export's (GDT's fine-tuning: 0.45)"})
    pixel_std: list[float] = field(default_factory=list, metadata={"help": "per-channel pixel std; [] = the export's (GDT's fine-tuning: 0.225)", "above": 0})

    def check(self) -> None:
        for key in ("pixel_mean", "pixel_std"):
            if len(getattr(self, key)) not in (0, 3):
                raise ConfigError(f"{key}: give 3 values (R, G, B) or [] for the export's", key=key)
        if bool(self.pixel_mean) != bool(self.pixel_std):
            raise ConfigError("pixel_mean / pixel_std: give both or neither", key="pixel_std")
        if self.test_epochs and (self.epochs != int(self.epochs) or max(self.test_epochs) >= self.epochs):
            raise ConfigError(f"test_epochs={self.test_epochs}: 0-based epochs below epochs={self.epochs} "
                              "(a whole number)", key="test_epochs")


class Method(BaseMethod):
    """Backbone + linear head, cross-entropy on the sample's label."""

    def __init__(self, cfg: Config, shared: SharedSettings):
        super().__init__()
        fc = cfg
        if not fc.backbone:
            raise ConfigError("finetune.backbone: give an export folder (python -m pipeline export) "
                              "or a finished pretraining run")
        if fc.classes < 1:
            raise ConfigError("finetune.classes: must be >= 1 (the finetune stage reads it from the shards)")
        video = Path(fc.backbone) / "video"
        if not has_spec(video):
            raise ConfigError(f"finetune.backbone={fc.backbone}: no exported video backbone "
                              f"({spec_path(video)} missing)")
        self.backbone = load_backbone(video, pretrained=fc.pretrained).train()
        self.drop = nn.Dropout(fc.dropout)
        self.head = nn.Linear(self.backbone.out_dim, fc.classes)
        if fc.head_init == "orthogonal":
            nn.init.orthogonal_(self.head.weight, gain=1.0)
            nn.init.zeros_(self.head.bias)
        self.backbone_lr_scale = fc.backbone_lr_scale

    def lr_scale(self, name: str) -> float:
        return self.backbone_lr_scale if name.startswith("backbone.") else 1.0

    def logits(self, video: torch.Tensor) -> torch.Tensor:
        """[B, C, T, S, S] -> [B, classes]."""
        return self.head(self.drop(self.backbone(video)))

    def forward(self, batch):
        logits = self.logits(batch["video"][:, 0])  # the one view: a random clip of the sample
        label = batch["label"]
        loss = F.cross_entropy(logits.float(), label, ignore_index=-1)
        top1 = (logits.argmax(1) == label).float().mean()
        return loss, {"clip_top1": top1.detach()}


@dataclass
class RunConfig(TrainConfig):
    """A fine-tuning run: the engine's settings plus ``finetune:``."""
    method: str = method_field("finetune")
    finetune: Config = field(default_factory=Config)
