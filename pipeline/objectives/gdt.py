"""GDT: cross-modal contrastive loss over compositions of transformations (Patrick et al. 2021).

Transformations of a sample: sample distinctiveness (always: other samples are negatives),
time reversal r in {0, 1} and time shift s in {0, 1} (two clip positions). Each of the
latter is ``off`` (one value only), ``invariant`` or ``variant``. A video view (s, r) and
an audio view (s', r') OF THE SAME SAMPLE form
- a positive if they differ in no variant transformation (so an invariant one makes the
  transformed other modality a positive too),
- a hard negative otherwise (a variant transformation makes it distinct).
Positives are always cross-modal. Every positive pair is its own cross-entropy term: its
denominator holds the positive, every view of every other sample on every rank, and the
hard negatives of the same sample, but not the sample's other positives. Video->audio
and audio->video terms are averaged; temperature 0.07. With both transformations off
this is exactly symmetric InfoNCE (``nce.info_nce``).

FORMS (``gdt.form``): the above is ``joint``, the paper's composition (a pair is positive
iff positive under every factor) as one cross-entropy per positive; its keys carry
gradients, so the result equals one process on the concatenated batch (scaling contract:
see ``nce.py``). The public code instead averages pairwise terms per factor and
back-propagates only through the queries: ``official_exact`` (its value exactly,
including its dependence on the split over GPUs) and ``official`` (the same terms and
weights, independent of the split); see ``gdt_official.py``. Measured on the same
embeddings, the forms differ (tests/parity/README.md, "GDT loss").

INPUT CONTRACT: ``out["video"]`` and ``out["audio"]`` are [n, K, D] with the views in
the loader's order (``clip_sample.view_layout`` with copies=1): view k = s * R + r with
R = 2 if reversal is on else 1, S = 2 if shift is on else 1, K = S * R:
  both off: K=1 (positions=1, reverse=false); reversal only: K=2 [v, v_rev];
  shift only: K=2 [v_pos0, v_pos1]; both: K=4 [s0, s0_rev, s1, s1_rev].
``GDTConfig.loader_clip()`` gives the matching loader settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.objectives import gdt_official
from pipeline.objectives.gather import gather_sizes, gather_with_grad, world
from pipeline.objectives.nce import Temperature, TemperatureConfig, prepare

MODES = ("off", "invariant", "variant")
FORMS = ("joint", "official", "official_exact")


@dataclass
class GDTConfig:
    reversal: str = field(default="off", metadata={"help": f"time reversal: {' | '.join(MODES)}"})
    shift: str = field(default="off", metadata={"help": f"time shift: {' | '.join(MODES)}"})
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings before the dot product"})
    form: str = field(default="joint", metadata={
        "help": "joint: the paper's composition, one cross-entropy over a positive mask, keys with gradients; "
                "official: the public code's weighted sum of pairwise terms, gradients through the queries "
                "only, independent of the split over GPUs; official_exact: the public code's value exactly, "
                "which depends on the split over GPUs and repeats some negatives",
        "choices": FORMS})
    simulate_ranks: int = field(default=1, metadata={
        "help": "official_exact in ONE process only: split the batch into this many simulated GPUs "
                "(auditing the public code's multi-GPU value); 1 = the real ranks", "min": 1})

    def __post_init__(self) -> None:
        # YAML 1.1 reads a bare `off` as false: `shift: off` arrives here as "False"
        for key in ("reversal", "shift"):
            if str(getattr(self, key)).lower() in ("false", "no", "0"):
                setattr(self, key, "off")

    def check(self) -> None:
        for key in ("reversal", "shift"):
            if getattr(self, key) not in MODES:
                raise ConfigError(f"gdt.{key}: unknown mode {getattr(self, key)!r}; choose from {', '.join(MODES)}")
        if self.form not in FORMS:
            raise ConfigError(f"gdt.form: unknown form {self.form!r}; choose from {', '.join(FORMS)}")
        if self.simulate_ranks != 1 and self.form != "official_exact":
            raise ConfigError(f"gdt.simulate_ranks={self.simulate_ranks}: only the official_exact form "
                              f"depends on the ranks; with gdt.form={self.form} leave it at 1")

    def loader_clip(self) -> dict:
        """The loader's clip settings that produce this objective's views."""
        return {"positions": 1 if self.shift == "off" else 2, "copies": 1, "reverse": self.reversal != "off"}

    def layout(self) -> list[tuple[int, int]]:
        """(shift s, reversal r) of each view index k, in the loader's order."""
        c = self.loader_clip()
        return [(s, r) for s in range(c["positions"]) for r in range(2 if c["reverse"] else 1)]


def relations(cfg: GDTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool [K, K] matrices over (video view, audio view) of one sample: positive, hard negative."""
    cfg.check()
    views = cfg.layout()
    k = len(views)
    hard = torch.zeros(k, k, dtype=torch.bool)
    for i, (s, r) in enumerate(views):
        for j, (s2, r2) in enumerate(views):
            hard[i, j] = (r != r2 and cfg.reversal == "variant") or (s != s2 and cfg.shift == "variant")
    return ~hard, hard


def _direction(q: torch.Tensor, keys: torch.Tensor, pos: torch.Tensor, hard: torch.Tensor, offset: int,
               temperature) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sum of CE terms of queries q [n, K, D] against keys [N, K, D] (other modality, global)."""
    n, k, _ = q.shape
    total = keys.shape[0]
    qi, ki = pos.nonzero(as_tuple=True)  # the P positive (query view, key view) pairs
    logits = torch.einsum("npd,md->npm", q[:, qi], keys.reshape(total * k, -1)) / temperature  # [n, P, N*K]
    own = torch.arange(n, device=q.device) + offset  # global index of each local sample
    # within the own sample's block only the positive itself and the hard negatives compete
    allowed = hard[qi].clone()
    allowed[torch.arange(len(qi)), ki] = True  # [P, K]
    is_own = torch.arange(total, device=q.device)[None, :] == own[:, None]  # [n, N]
    drop = is_own[:, None, :, None] & ~allowed.to(q.device)[None, :, None, :]  # [n, P, N, K]
    logits = logits.masked_fill(drop.reshape(n, len(qi), total * k), float("-inf"))
    target = own[:, None] * k + ki.to(q.device)[None, :]  # [n, P]
    loss = F.cross_entropy(logits.reshape(n * len(qi), -1), target.reshape(-1), reduction="sum")
    correct = (logits.argmax(-1) == target).float().sum()
    return loss, correct, n * len(qi)


class GDT(nn.Module):
    """``forward(out)`` with ``out["video"]``, ``out["audio"]`` [n, K, D] -> (loss, metrics)."""

    def __init__(self, cfg: GDTConfig):
        super().__init__()
        self.cfg = cfg
        pos, hard = relations(cfg)
        self.register_buffer("pos", pos, persistent=False)
        self.register_buffer("hard", hard, persistent=False)
        self.temperature = Temperature(cfg.temperature)
        self.plan = gdt_official.terms(cfg.reversal, cfg.shift)

    def _views(self, out: dict[str, torch.Tensor], mod: str) -> torch.Tensor:
        k = self.pos.shape[0]
        if mod not in out:
            raise ValueError(f"gdt: needs {mod!r} embeddings; the model returned {sorted(out)}")
        e = out[mod]
        if e.dim() == 2 and k == 1:
            e = e[:, None]
        if e.dim() != 3 or e.shape[1] != k:
            raise ValueError(f"gdt(reversal={self.cfg.reversal}, shift={self.cfg.shift}): {mod!r} embeddings "
                             f"must be [B, {k}, D], got {tuple(e.shape)}; set the loader's clip to "
                             f"{self.cfg.loader_clip()}")
        return prepare(e, self.cfg.normalize)

    def forward(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        v, a = self._views(out, "video"), self._views(out, "audio")
        if v.shape != a.shape:
            raise ValueError(f"gdt: video {tuple(v.shape)} and audio {tuple(a.shape)} embeddings differ in shape")
        t = self.temperature()
        if self.cfg.form == "joint":
            loss, metrics = self._joint(v, a, t)
        elif self.cfg.form == "official":
            loss, metrics = gdt_official.official(v, a, self.plan, t)
        else:
            loss, metrics = gdt_official.official_exact(v, a, self.plan, t, self.cfg.simulate_ranks)
        with torch.no_grad():
            sim = torch.einsum("nkd,njd->nkj", v, a)  # own-sample cross-modal similarities
            metrics.update({"sim_pos": sim[:, self.pos].mean(), "temperature": torch.as_tensor(t).detach().clone()})
            if self.hard.any():
                metrics["sim_hard"] = sim[:, self.hard].mean()
        return loss, metrics

    def _joint(self, v: torch.Tensor, a: torch.Tensor, t) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = v.shape[0]
        both, offset = gather_with_grad(torch.stack([v, a], dim=1), gather_sizes(n, v.device))
        total, ws = both.shape[0], world()[1]
        loss_va, ok_va, terms = _direction(v, both[:, 1], self.pos, self.hard, offset, t)
        loss_av, ok_av, _ = _direction(a, both[:, 0], self.pos.t(), self.hard.t(), offset, t)
        per_sample = terms // n  # P positive pairs per sample and direction
        loss = 0.5 * (loss_va + loss_av) * (ws / (total * per_sample))
        metrics = {"acc_v2a": ok_va.detach() / terms, "acc_a2v": ok_av.detach() / terms,
                   # samples each row is scored against: this rank's and every other's
                   "global_batch": torch.tensor(float(total))}
        return loss, metrics


Config, Objective = GDTConfig, GDT
