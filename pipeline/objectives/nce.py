"""Cross-modal InfoNCE (audio-video, video-text), symmetric, with negatives from every rank.

Each rank scores only its own rows against the gathered global batch (open_clip's local
loss): logits are [n_local, N_global], labels = arange(n) + row offset of this rank, so
memory is O(n x N) and the result equals the naive N x N loss of one process.

Scaling contract with the engine (see ``gather.py``): each rank returns
``world_size / N * sum(local row losses)``, i.e. its local mean when batches are equal;
the mean over ranks is the global loss, and parameter gradients AVERAGED over ranks
(DeepSpeed / DDP default) equal one process's on the concatenated batch. Do not divide
or multiply by the world size elsewhere. Gradients w.r.t. a rank's inputs (before
averaging) are world_size x the single-process ones; that is what averaging undoes.

A learned temperature is a parameter of the objective (``temperature.log_t``): the engine
must optimise the objective's parameters together with the model's (e.g. wrap both in
one module) and, as CLIP does, exempt it from weight decay (which would pull T to 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.objectives.gather import gather_sizes, gather_with_grad, world


@dataclass
class TemperatureConfig:
    value: float = field(default=0.07, metadata={"help": "softmax temperature (initial value if learned)", "above": 0})
    learn: bool = field(default=False, metadata={"help": "learn it (log-parameterised, clamped to [min, max])"})
    min: float = field(default=0.01, metadata={"help": "lower clamp of a learned temperature (CLIP: 0.01)", "above": 0})
    max: float = field(default=1.0, metadata={"help": "upper clamp of a learned temperature", "above": 0})


class _Clamp(torch.autograd.Function):
    """clamp() whose gradient is kept when it points back into [lo, hi]: a plain clamp
    zeroes it outside the range, so a value that overshoots a bound stays stuck there."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # gradient descent moves x by -grad: allowed below lo if grad < 0, above hi if grad > 0
        keep = ((x >= ctx.lo) | (grad < 0)) & ((x <= ctx.hi) | (grad > 0))
        return grad * keep, None, None


class Temperature(nn.Module):
    """Fixed (a float) or learned: exp(log_t) with log_t clamped to [log min, log max].

    Learned: the clamp keeps gradients that lead back into the range, so the parameter
    cannot get stuck past a bound (no in-place clamping of the parameter is needed,
    which would break a graph that saved it).
    """

    def __init__(self, cfg: TemperatureConfig):
        super().__init__()
        if not 0 < cfg.min <= cfg.value <= cfg.max:
            raise ConfigError(f"temperature: need 0 < min <= value <= max, got min={cfg.min} "
                              f"value={cfg.value} max={cfg.max}")
        self.cfg = cfg
        self.log_t = nn.Parameter(torch.tensor(math.log(cfg.value))) if cfg.learn else None

    def forward(self) -> torch.Tensor | float:
        if self.log_t is None:
            return self.cfg.value
        return _Clamp.apply(self.log_t, math.log(self.cfg.min), math.log(self.cfg.max)).exp()


def prepare(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    """float32 for half-precision inputs (logits / 0.07 need more than bf16's 3 digits),
    unit rows if ``normalize``."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return F.normalize(x, dim=-1) if normalize else x


def info_nce(x: torch.Tensor, y: torch.Tensor, temperature: torch.Tensor | float,
             normalize: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Symmetric InfoNCE between row-aligned x [n, D] and y [n, D] over the global batch.

    loss = 0.5 * (CE(x -> all y) + CE(y -> all x)), the positive of row i being row i of
    the other modality; returned with the world-size scaling described in the module doc.
    """
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError(f"info_nce: need two [n, D] tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = prepare(x, normalize), prepare(y, normalize)
    n = x.shape[0]
    both, offset = gather_with_grad(torch.stack([x, y], dim=1), gather_sizes(n, x.device))
    total, ws = both.shape[0], world()[1]
    labels = torch.arange(n, device=x.device) + offset
    logits_xy = x @ both[:, 1].t() / temperature
    logits_yx = y @ both[:, 0].t() / temperature
    sum_xy = F.cross_entropy(logits_xy, labels, reduction="sum")
    sum_yx = F.cross_entropy(logits_yx, labels, reduction="sum")
    loss = 0.5 * (sum_xy + sum_yx) * (ws / total)
    with torch.no_grad():
        metrics = {"acc_xy": (logits_xy.argmax(1) == labels).float().mean(),
                   "acc_yx": (logits_yx.argmax(1) == labels).float().mean()}
    return loss, metrics


def _pair(spec: str) -> tuple[str, str]:
    parts = spec.split("-")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise ConfigError(f"nce.pairs: {spec!r} is not 'modality-modality' (e.g. video-audio)")
    return parts[0], parts[1]


@dataclass
class NCEConfig:
    pairs: list[str] = field(default_factory=lambda: ["video-audio"], metadata={
        "help": "modality pairs contrasted, e.g. [video-audio, video-text] (MMV)"})
    weights: list[float] = field(default_factory=list, metadata={
        "help": "weight of each pair's loss; empty = equal weights summing to 1", "min": 0})
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings before the dot product"})


def single_view(out: dict[str, torch.Tensor], mod: str, who: str) -> torch.Tensor:
    """out[mod] as [n, D]: a view axis of size 1 is dropped; more views are an error."""
    if mod not in out:
        raise ValueError(f"{who}: needs {mod!r} embeddings; the model returned {sorted(out)}")
    e = out[mod]
    if e.dim() == 3 and e.shape[1] == 1:
        e = e[:, 0]
    if e.dim() != 2:
        raise ValueError(f"{who}: {mod!r} embeddings must be [B, D] (or [B, 1, D]), got {tuple(e.shape)}; "
                         "several views per sample belong to the gdt or simclr objectives")
    return e


class CrossModalNCE(nn.Module):
    """``forward(out)`` with ``out`` the model's embedding dict -> (loss, metrics)."""

    def __init__(self, cfg: NCEConfig):
        super().__init__()
        self.cfg = cfg
        self.pairs = [_pair(p) for p in cfg.pairs]
        if not self.pairs:
            raise ConfigError("nce.pairs: give at least one pair, e.g. [video-audio]")
        weights = list(cfg.weights) or [1.0 / len(self.pairs)] * len(self.pairs)
        if len(weights) != len(self.pairs):
            raise ConfigError(f"nce.weights: {len(weights)} weights for {len(self.pairs)} pairs")
        self.weights = weights
        self.temperature = Temperature(cfg.temperature)

    def forward(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = self.temperature()
        loss, metrics = 0.0, {}
        for (a, b), w in zip(self.pairs, self.weights):
            term, m = info_nce(single_view(out, a, "nce"), single_view(out, b, "nce"), t, self.cfg.normalize)
            loss = loss + w * term
            metrics[f"loss_{a}_{b}"] = term.detach()
            metrics[f"acc_{a}2{b}"], metrics[f"acc_{b}2{a}"] = m["acc_xy"], m["acc_yx"]
        metrics["temperature"] = torch.as_tensor(t).detach().clone()
        return loss, metrics  # type: ignore[return-value]


Config, Objective = NCEConfig, CrossModalNCE  # the engine's convention: module.Config / module.Objective
