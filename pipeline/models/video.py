"""Video backbones: torchvision's VideoResNet family (R(2+1)D, R3D, MC3), width/depth scaled.

torchvision's ``VideoResNet`` constructor hard-codes the stage widths 64-128-256-512 and a
classifier, so the network is assembled here from torchvision's public building blocks
(``BasicBlock`` and the conv builders ``Conv2Plus1D`` / ``Conv3DSimple`` /
``Conv3DNoTemporal`` with their ``get_downsample_stride``), in the order and under the
names ``VideoResNet`` uses (``stem``, ``layer1..4``, ``avgpool``). Nothing private of
torchvision is touched (no ``_make_layer``/``inplanes``), so no version guard is needed.
At the default widths the state dict has exactly torchvision's keys and shapes (minus
``fc``), so torchvision checkpoints load unchanged (``tests/models/test_models.py``). Tiny widths
give CPU-trainable models for tests and demos.

``forward_features`` keeps the spatio-temporal map ([B, D, T', H', W']) because the
audio-visual detection method needs a visual feature per location; ``forward`` pools it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, Conv3DNoTemporal, Conv3DSimple

from pipeline.errors import ConfigError
from pipeline.models.init import resnet_init

# conv builder of each of the 4 stages, per family (as torchvision's r2plus1d_18/r3d_18/mc3_18)
CONV_MAKERS = {
    "2plus1d": (Conv2Plus1D,) * 4,
    "3d": (Conv3DSimple,) * 4,
    "mc3": (Conv3DSimple,) + (Conv3DNoTemporal,) * 3,
}


@dataclass
class VideoResNetConfig:
    conv: str = field(default="2plus1d", metadata={
        "help": f"convolution family: {' | '.join(CONV_MAKERS)} (R(2+1)D, R3D, MC3)"})
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512], metadata={
        "help": "channels of the 4 stages; the last one is the feature dimension"})
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2], metadata={
        "help": "BasicBlocks per stage ([2,2,2,2] = 18 layers)"})
    in_channels: int = field(default=3, metadata={"help": "input channels (RGB = 3)"})

    def check(self) -> None:
        if self.conv not in CONV_MAKERS:
            raise ConfigError(f"video backbone: unknown conv {self.conv!r}; choose from {', '.join(CONV_MAKERS)}")
        for key in ("widths", "blocks"):
            val = list(getattr(self, key))
            if len(val) != 4 or min(val) < 1:
                raise ConfigError(f"video backbone: {key} needs 4 positive integers, got {val}")


def _stem(conv: str, in_ch: int, width: int) -> nn.Sequential:
    """torchvision's R2Plus1dStem / BasicStem with their widths scaled (45 mid channels at 64)."""
    if conv == "2plus1d":
        mid = max(1, round(45 * width / 64))
        return nn.Sequential(
            nn.Conv3d(in_ch, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, width, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(width), nn.ReLU(inplace=True))
    return nn.Sequential(
        nn.Conv3d(in_ch, width, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def _stage(conv_builder: type, in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage as torchvision's ``VideoResNet`` builds it: a 1x1x1 conv + BN shortcut where
    the shape changes (stride from the conv builder: mc3's 2D stages keep the time axis),
    then ``blocks`` BasicBlocks."""
    downsample = None
    if stride != 1 or in_ch != width:
        downsample = nn.Sequential(
            nn.Conv3d(in_ch, width, kernel_size=1, stride=conv_builder.get_downsample_stride(stride), bias=False),
            nn.BatchNorm3d(width))
    layers = [BasicBlock(in_ch, width, conv_builder, stride, downsample)]
    layers += [BasicBlock(width, width, conv_builder) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class VideoBackbone(nn.Module):
    """[B, C, T, H, W] -> pooled features [B, out_dim]; ``forward_features`` -> [B, out_dim, T', H', W'].

    torchvision's strides: spatial /16; temporal /8 for 2plus1d and 3d, none for mc3 (its
    later stages are 2D). A [3, 8, 64, 64] clip gives a 1 x 4 x 4 map (mc3: 8 x 4 x 4).
    """

    def __init__(self, cfg: VideoResNetConfig):
        cfg.check()
        super().__init__()
        self.cfg = cfg
        self.stem = _stem(cfg.conv, cfg.in_channels, cfg.widths[0])
        in_ch = cfg.widths[0]
        for i, (maker, width, n) in enumerate(zip(CONV_MAKERS[cfg.conv], cfg.widths, cfg.blocks)):
            setattr(self, f"layer{i + 1}", _stage(maker, in_ch, width, n, stride=1 if i == 0 else 2))
            in_ch = width
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.out_dim = cfg.widths[-1]
        resnet_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"video backbone expects [B, C, T, H, W], got shape {tuple(x.shape)}")
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """Feature map [B, D, T', H', W'] -> [B, D] (global average)."""
        return self.avgpool(fmap).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))


def _preset(conv: str, widths: list[int], blocks: list[int]) -> VideoResNetConfig:
    return VideoResNetConfig(conv=conv, widths=list(widths), blocks=list(blocks))


FULL, TINY = [64, 128, 256, 512], [16, 32, 64, 128]

PRESETS: dict[str, VideoResNetConfig] = {
    "r2plus1d_18": _preset("2plus1d", FULL, [2, 2, 2, 2]),
    "r3d_18": _preset("3d", FULL, [2, 2, 2, 2]),
    "mc3_18": _preset("mc3", FULL, [2, 2, 2, 2]),
    # width / 4, one block per stage: < 1M parameters, a [2,3,8,64,64] clip in well under 1 s on a CPU
    "r2plus1d_tiny": _preset("2plus1d", TINY, [1, 1, 1, 1]),
    "r3d_tiny": _preset("3d", TINY, [1, 1, 1, 1]),
    "mc3_tiny": _preset("mc3", TINY, [1, 1, 1, 1]),
}
