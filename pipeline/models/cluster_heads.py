"""SeLaVi's clustering heads: h classifiers of K clusters on one modality's features.

Two forms (``selavi.head``):
- ``linear``: one Linear D -> h*K, the h heads side by side (the lightest form; the tiny
  recipe uses it).
- ``official_mlp``: what the official SeLaVi model builds with ``use_mlp`` (its public
  pretraining script's setting): per head an MLP Dropout(p) -> Linear D -> hidden (no bias)
  -> BatchNorm -> ReLU -> Dropout(p) -> Linear hidden -> K, with p = 0.3 and hidden = 512.
  At K = 309, h = 10 on 512-d features that is 4.22 M parameters per modality against the
  linear form's 1.59 M. The heads are separate modules (not one fused matmul) so that
  every head draws its own dropout masks, as the official heads do.

Both map [.., D] to logits [.., h, K] (no normalisation: the official SeLaVi model runs
with ``norm_feat=False``). ``official_key_map`` renames an official checkpoint's head
keys onto the MLP form.
"""
from __future__ import annotations

import re

import torch
from torch import nn

HEAD_FORMS = ("official_mlp", "linear")


class LinearClusterHeads(nn.Module):
    """h linear classifiers of K clusters as one Linear: [.., D] -> [.., h, K]."""

    def __init__(self, dim: int, heads: int, clusters: int):
        super().__init__()
        self.heads, self.clusters = heads, clusters
        self.linear = nn.Linear(dim, heads * clusters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.heads, self.clusters))


class MLPClusterHeads(nn.Module):
    """h MLP classifiers (the official SeLaVi head): [.., D] -> [.., h, K].

    Layer indices inside each head: 0 Dropout, 1 Linear (no bias), 2 BatchNorm1d, 3 ReLU,
    4 Dropout, 5 Linear. Leading dims are flattened for the BatchNorm.
    """

    def __init__(self, dim: int, heads: int, clusters: int, hidden: int = 512, dropout: float = 0.3):
        super().__init__()
        self.heads, self.clusters = heads, clusters
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                          nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, clusters))
            for _ in range(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        out = torch.stack([mlp(flat) for mlp in self.mlps], 1)  # [N, h, K]
        return out.reshape(*lead, self.heads, self.clusters)


def build_cluster_heads(form: str, dim: int, heads: int, clusters: int) -> nn.Module:
    """The heads of ``form`` (one of ``HEAD_FORMS``)."""
    if form == "official_mlp":
        return MLPClusterHeads(dim, heads, clusters)
    if form == "linear":
        return LinearClusterHeads(dim, heads, clusters)
    raise ValueError(f"unknown SeLaVi head form {form!r}; expected one of {HEAD_FORMS}")


# official MLP layer index (inside ``block_forward``) -> ours (inside ``mlps.<h>``); the
# official Flatten / Unsqueeze layers hold no state
_LAYER = {"2": "1", "4": "2", "8": "5"}
_OFFICIAL_KEY = re.compile(r"^(?:module\.)?mlp_([va])(\d+)\.block_forward\.(\d+)\.(.+)$")


def official_key_map(key: str) -> str | None:
    """``mlp_v3.block_forward.4.running_mean`` -> ``video.mlps.3.2.running_mean`` (the
    modality, then the key inside ``MLPClusterHeads``); None for a key that is not an
    official SeLaVi MLP head key (backbones, a ``module.`` prefix is accepted)."""
    m = _OFFICIAL_KEY.match(key)
    if not m or m.group(3) not in _LAYER:
        return None
    mod = "video" if m.group(1) == "v" else "audio"
    return f"{mod}.mlps.{m.group(2)}.{_LAYER[m.group(3)]}.{m.group(4)}"


def load_official_heads(state: dict[str, torch.Tensor], video: MLPClusterHeads,
                        audio: MLPClusterHeads) -> None:
    """Load an official SeLaVi state_dict's head weights into the two MLP head modules
    (strict: every head key of both modules must be present, and no unmapped head key)."""
    parts: dict[str, dict[str, torch.Tensor]] = {"video": {}, "audio": {}}
    for key, value in state.items():
        ours = official_key_map(key)
        if ours is None:
            if re.match(r"^(?:module\.)?mlp_[va]\d", key):
                raise ValueError(f"official SeLaVi head key {key!r} has no counterpart in the MLP heads")
            continue
        mod, rest = ours.split(".", 1)
        parts[mod][rest] = value
    video.load_state_dict(parts["video"], strict=True)
    audio.load_state_dict(parts["audio"], strict=True)
