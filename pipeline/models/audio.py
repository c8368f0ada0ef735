"""Audio backbones: torchvision's 2D ResNet on a one-channel log-mel spectrogram.

GDT's audio network is a ResNet-9 (one BasicBlock per stage, 1 input channel); ResNet-18
is torchvision's resnet18 with a 1-channel stem. torchvision's ``ResNet`` constructor
hard-codes the widths 64-512 and 3 input channels, so the network is assembled here from
torchvision's public ``BasicBlock`` in the order and under the names ``ResNet`` uses
(``conv1``, ``bn1``, ``layer1..4``, ...). Nothing private of torchvision is touched (no
``_make_layer``/``_norm_layer``/``inplanes``), so no version guard is needed. At default
widths the state dict has torchvision's keys (minus ``fc``) and shapes (except ``conv1``'s
input channels).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

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


def _stage(in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage as torchvision's ``ResNet`` builds it (no dilation, groups 1): a 1x1 conv +
    BN shortcut where the shape changes, then ``blocks`` BasicBlocks."""
    downsample = None
    if stride != 1 or in_ch != width:
        downsample = nn.Sequential(nn.Conv2d(in_ch, width, kernel_size=1, stride=stride, bias=False),
                                   nn.BatchNorm2d(width))
    layers = [BasicBlock(in_ch, width, stride, downsample)]
    layers += [BasicBlock(width, width) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class AudioBackbone(nn.Module):
    """[B, 1, n_mels, frames] -> [B, out_dim]; ``forward_features`` -> [B, out_dim, F', T'] (stride 32)."""

    def __init__(self, cfg: AudioResNetConfig):
        cfg.check()
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = cfg.widths[0]
        for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            setattr(self, f"layer{i + 1}", _stage(in_ch, width, n, stride=1 if i == 0 else 2))
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
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
