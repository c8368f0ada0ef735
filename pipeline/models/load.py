"""``load_backbone(DIR)``: an exported backbone as a plain ``nn.Module``.

Needs only this package's model definitions, torch and safetensors: no training
configs, no DeepSpeed, no pickle. An export folder may come from anyone, so its
``config.json`` is read as plain data and checked (``pipeline.models.export_spec``), and the
architecture it describes is built on the meta device first and compared with the safetensors header: a config that asks for more
(or other) tensors than the file holds fails before any memory is allocated.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from pipeline.errors import InputError
from pipeline.models.export_spec import SPEC, read_spec, spec_path
from pipeline.models.heads import ProjectionHead
from pipeline.models.registry import BUILDERS


# The largest architecture built from a config.json with no weights file beside it (the
# random-init baseline of an export whose weights were left out): the biggest backbone
# here is ~33M parameters; 1e9 (4 GB in float32) leaves room and refuses a typo'd 1 TB.
MAX_UNCHECKED_PARAMETERS = 1_000_000_000


class WithHead(nn.Module):
    """Backbone followed by its projection head: inputs -> the shared embedding space."""

    def __init__(self, backbone: nn.Module, head: nn.Module, kind: str):
        super().__init__()
        self.backbone, self.head, self.kind = backbone, head, kind

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        feat = self.backbone(x, lengths) if self.kind == "text" else self.backbone(x)
        return self.head(feat)


def _planned(build: Callable[[], nn.Module], spec_path: Path) -> dict[str, tuple]:
    """Tensor names and shapes ``build()`` would allocate, found without allocating them."""
    try:
        with torch.device("meta"):
            return {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except (RuntimeError, ValueError, TypeError, OverflowError) as err:
        if isinstance(err, InputError) or type(err).__name__ == "ConfigError":
            raise
        raise InputError(f"{spec_path}: cannot build the architecture it describes ({str(err).splitlines()[0][:120]})") from None


def _numel(shapes: dict[str, tuple]) -> int:
    return sum(int(torch.Size(s).numel()) for s in shapes.values())


def _header(weights: Path) -> dict[str, tuple]:
    """Names and shapes in a safetensors header; InputError for one that is not readable
    (a crafted length, offsets or dtype), so no error of the parser escapes as a traceback."""
    try:
        with safe_open(str(weights), "pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as err:  # safetensors' own error type is not part of its public API
        raise InputError(f"{weights}: not a readable safetensors file ({str(err).splitlines()[0][:120]})") from None


def _check_shapes(build: Callable[[], nn.Module], weights: Path) -> None:
    """InputError unless ``build()`` has exactly the tensors (names, shapes) of ``weights``."""
    want, have = _planned(build, spec_path(weights.parent)), _header(weights)
    if want != have:
        odd = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise InputError(f"{weights}: holds {_numel(have):,} parameters in {len(have)} tensors; its "
                         f"config.json describes {_numel(want):,} in {len(want)} (first difference: "
                         f"{odd[0]})")


def load_backbone(folder: str | Path, with_head: bool = False, device: str = "cpu",
                  pretrained: bool = True) -> nn.Module:
    """Rebuild the exported backbone (eval mode); ``with_head`` adds the projection head so
    outputs live in the space shared with the other modalities. ``pretrained=False``
    gives the same architecture freshly initialised (the random-init baseline)."""
    folder = Path(folder)
    spec = read_spec(folder)
    parts = [("backbone", lambda: BUILDERS[spec["kind"]](spec["name"], **spec.get("args", {})))]
    if with_head:
        h = spec.get("head")
        if h is None:
            raise InputError(f"{folder / SPEC}: no 'head' to load with_head")
        parts.append(("head", lambda: ProjectionHead(h["in_dim"], h["out_dim"], h["hidden"], h["normalize"])))
    nets = []
    for part, build in parts:
        weights = folder / f"{part}.safetensors"
        if weights.exists():
            _check_shapes(build, weights)
        elif pretrained:
            raise InputError(f"{weights}: missing")
        elif (n := _numel(_planned(build, spec_path(folder)))) > MAX_UNCHECKED_PARAMETERS:  # no file bounds it
            raise InputError(f"{spec_path(folder)}: describes a {part} of {n:,} parameters and there "
                             f"is no {weights.name} to check it against; more than "
                             f"{MAX_UNCHECKED_PARAMETERS:,} is not built")
        net = build()
        if pretrained:
            try:
                state = load_file(weights, device=device)
            except Exception as err:  # the header was read; the data behind it may still be bad
                raise InputError(f"{weights}: unreadable ({str(err).splitlines()[0][:120]})") from None
            net.load_state_dict(state)
        nets.append(net)
    net = WithHead(nets[0], nets[1], spec["kind"]) if with_head else nets[0]
    return net.to(device).eval()
