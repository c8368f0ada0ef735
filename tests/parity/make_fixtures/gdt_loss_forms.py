"""Measure how the three ``gdt.form``s differ on the same embeddings (numbers for README.md).

    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/parity/make_fixtures/gdt_loss_forms.py

Part 1: the parity fixture's embeddings (8 samples, 16-d): every hypothesis, every form,
``official_exact`` at 2, 4 and 8 simulated ranks. Part 2: the recipe's scale for
``gdt_k400`` (hypothesis 8, 64 GPUs x 8 = 512 samples, 256-d, synthetic embeddings built
like the fixture's): the loss of each form, ``official_exact`` at 2-64 simulated ranks of
the same 512 samples, and the cosine between each form's gradient and ``official_exact``'s
at 64 ranks. Needs no official code (the fixture's official values come from the JSON).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from pipeline.objectives.gdt import GDT, GDTConfig

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SETTINGS = {1: ("off", "off"), 2: ("variant", "off"), 3: ("invariant", "off"), 4: ("off", "variant"),
            5: ("off", "invariant"), 6: ("variant", "variant"), 7: ("invariant", "variant"),
            8: ("variant", "invariant"), 9: ("invariant", "invariant")}


def run(hyp: int, form: str, x: dict, simulate: int = 1):
    leaf = {m: t.clone().requires_grad_(True) for m, t in x.items()}
    cfg = GDTConfig(reversal=SETTINGS[hyp][0], shift=SETTINGS[hyp][1], form=form, simulate_ranks=simulate)
    loss, _ = GDT(cfg)(dict(leaf))
    loss.backward()
    return loss.item(), torch.cat([leaf[m].grad.flatten() for m in ("video", "audio")])


def part1() -> None:
    tensors, meta = load_file(FIX / "gdt_loss.safetensors"), json.loads((FIX / "gdt_loss.json").read_text())
    print("| hypothesis | official 2 / 4 / 8 ranks | official_exact 2 / 4 / 8 | official (1 rank) | joint (1 rank) |")
    print("|---|---|---|---|---|")
    for hyp in SETTINGS:
        views = meta["used_views"][str(hyp)]
        x = {m: tensors[f"embed.{m}"][:, views] for m in ("video", "audio")}
        off = [meta["losses"][f"hyp{hyp}.world{w}"]["loss"] for w in (2, 4, 8)]
        exact = [run(hyp, "official_exact", x, w)[0] for w in (2, 4, 8)]
        print(f"| {hyp} | {' / '.join(f'{v:.6f}' for v in off)} | {' / '.join(f'{v:.6f}' for v in exact)} "
              f"| {run(hyp, 'official', x)[0]:.6f} | {run(hyp, 'joint', x)[0]:.6f} |")


def part2(n: int = 512, d: int = 256, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, d, generator=g, dtype=torch.float64)
    x = {m: base + 1.2 * torch.randn(n, 4, d, generator=g, dtype=torch.float64)
         + 0.2 * torch.randn(1, 4, d, generator=g, dtype=torch.float64) for m in ("video", "audio")}
    ref_loss, ref_grad = run(8, "official_exact", x, 64)
    print(f"\nhypothesis 8, {n} samples, {d}-d: official_exact at 64 ranks (the recipe's split) {ref_loss:.6f}")
    for w in (2, 4, 8, 16, 32):
        loss, grad = run(8, "official_exact", x, w)
        print(f"  official_exact at {w:2d} ranks {loss:.6f} (diff {loss - ref_loss:+.6f}, "
              f"gradient cosine {F.cosine_similarity(grad, ref_grad, dim=0).item():.4f})")
    for form in ("official", "joint"):
        loss, grad = run(8, form, x)
        print(f"  {form:14s} {loss:.6f} (diff {loss - ref_loss:+.6f}, gradient cosine "
              f"{F.cosine_similarity(grad, ref_grad, dim=0).item():.4f}, norm ratio "
              f"{(grad.norm() / ref_grad.norm()).item():.3f})")


if __name__ == "__main__":
    torch.set_num_threads(1)
    part1()
    part2()
