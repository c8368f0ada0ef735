"""``load_backbone(DIR)``: an exported backbone as a plain ``nn.Module``.

Needs only this package's model definitions, torch and safetensors: no training
configs, no DeepSpeed, no pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import BUILDERS


class WithHead(nn.Module):
    """Backbone followed by its projection head: inputs -> the shared embedding space."""

    def __init__(self, backbone: nn.Module, head: nn.Module, kind: str):
        super().__init__()
        self.backbone, self.head, self.kind = backbone, head, kind

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        feat = self.backbone(x, lengths) if self.kind == "text" else self.backbone(x)
        return self.head(feat)


def read_spec(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not an exported backbone folder (no config.json)")
    return json.loads(path.read_text())


def load_backbone(folder: str | Path, with_head: bool = False, device: str = "cpu",
                  pretrained: bool = True) -> nn.Module:
    """Rebuild the exported backbone (eval mode); ``with_head`` adds the projection head so
    outputs live in the space shared with the other modalities. ``pretrained=False``
    gives the same architecture freshly initialised (the random-init baseline)."""
    folder = Path(folder)
    spec = read_spec(folder)
    net = BUILDERS[spec["kind"]](spec["name"], **spec.get("args", {}))
    if pretrained:
        net.load_state_dict(load_file(folder / "backbone.safetensors", device=device))
    if with_head:
        h = spec["head"]
        head = ProjectionHead(h["in_dim"], h["out_dim"], h["hidden"], h["normalize"])
        if pretrained:
            head.load_state_dict(load_file(folder / "head.safetensors", device=device))
        net = WithHead(net, head, spec["kind"])
    return net.to(device).eval()
