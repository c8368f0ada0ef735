"""The initialisation torchvision gives its ResNets, for our 2-D and 3-D variants alike."""
from __future__ import annotations

from torch import nn


def resnet_init(module: nn.Module) -> None:
    """Kaiming-normal (fan-out) convolutions, BatchNorm at weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
