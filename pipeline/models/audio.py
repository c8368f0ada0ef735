"""Audio backbones: torchvision's 2D ResNet on a one-channel log-mel spectrogram.

GDT's audio network is a ResNet-9 (one BasicBlock per stage, 1 input channel); ResNet-18
is torchvision's resnet18 with a 1-channel stem. torchvision's ``ResNet`` hard-codes the
widths 64-512 and 3 input channels, so this subclass only replaces the constructor; the
stages come from torchvision's ``_make_layer``/``BasicBlock``. At default widths the state
dict has torchvision's keys (minus ``fc``) and shapes (except ``conv1``'s input channels).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from pipeline.errors import ConfigError
from pipeline.models.init import resnet_init


@dataclass
class AudioResNetConfig:
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512], metadata={
        "help": "channels of the 4 stages; the last one is the feature dimension"})
    blocks: list[int] = field(default_factory=lambda: [1, 1, 1, 1], metadata={
        "help": "BasicBlocks per stage ([1,1,1,1] = ResNet-9, [2,2,2,2] = ResNet-18)"})
    in_channels: int = field(default=1, metadata={"help": "input channels (log-mel = 1)"})

    def check(self) -> None:
        for key in ("widths", "blocks"):
            val = list(getattr(self, key))
            if len(val) != 4 or min(val) < 1:
                raise ConfigError(f"audio backbone: {key} needs 4 positive integers, got {val}")


class AudioBackbone(ResNet):
    """[B, 1, n_mels, frames] -> [B, out_dim]; ``forward_features`` -> [B, out_dim, F', T'] (stride 32)."""

    def __init__(self, cfg: AudioResNetConfig):
        cfg.check()
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes widths, 3 input channels, a classifier
        self.cfg = cfg
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = cfg.widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            setattr(self, f"layer{i + 1}", self._make_layer(BasicBlock, width, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        self.out_dim = cfg.widths[-1]
        resnet_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"audio backbone expects [B, 1, n_mels, frames], got shape {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.avgpool(fmap).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))


PRESETS: dict[str, AudioResNetConfig] = {
    "resnet9": AudioResNetConfig(blocks=[1, 1, 1, 1]),
    "resnet18": AudioResNetConfig(blocks=[2, 2, 2, 2]),
    "resnet_tiny": AudioResNetConfig(widths=[16, 32, 64, 128], blocks=[1, 1, 1, 1]),
}
