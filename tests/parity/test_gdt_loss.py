"""GDT's objective against the public code (facebookresearch/GDT at 873e630) on fixed embeddings.

The fixture (tests/parity/fixtures/gdt_loss.*, made by make_fixtures/gdt_loss.py, see
README.md "GDT loss") holds what the official ``train_one_epoch`` computes for hypotheses
1-9 with its multi-GPU gather simulated rank by rank: each rank's loss, their mean (what a
DDP run averages), and the gradient of that mean w.r.t. the embeddings at 2 and 4 ranks.
- ``gdt.form=official_exact`` equals it at 2, 4 and 8 ranks (simulated in one process,
  and on 2 real gloo processes), gradients included;
- ``gdt.form=official`` gives one value at 1, 2 and 4 real ranks (it does not depend on
  the split) and equals the official value where the official one does not depend on the
  split either (hypotheses 1, 2, 4).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dist_utils import run_distributed
from pipeline.errors import ConfigError
from pipeline.objectives.gdt import GDT, GDTConfig

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-6
SETTINGS = {1: ("off", "off"), 2: ("variant", "off"), 3: ("invariant", "off"), 4: ("off", "variant"),
            5: ("off", "invariant"), 6: ("variant", "variant"), 7: ("invariant", "variant"),
            8: ("variant", "invariant"), 9: ("invariant", "invariant")}
HYPS = list(SETTINGS)


def fixture() -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(FIXTURES / "gdt_loss.safetensors"), json.loads((FIXTURES / "gdt_loss.json").read_text())


def objective(hyp: int, form: str, simulate: int = 1) -> GDT:
    reversal, shift = SETTINGS[hyp]
    return GDT(GDTConfig(reversal=reversal, shift=shift, form=form, simulate_ranks=simulate))


def inputs(tensors, meta, hyp: int, rows=slice(None)) -> dict[str, torch.Tensor]:
    """The hypothesis's views of the fixed (raw, unnormalised) embeddings, as leaves."""
    views = meta["used_views"][str(hyp)]
    return {m: tensors[f"embed.{m}"][rows][:, views].clone().requires_grad_(True) for m in ("video", "audio")}


def loss_and_grads(obj: GDT, x: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    loss, _ = obj(dict(x))
    loss.backward()
    return loss.item(), {m: t.grad for m, t in x.items()}


def test_fixture_is_the_official_one():
    tensors, meta = fixture()
    assert meta["commit"].startswith("873e630") and meta["temperature"] == 0.07
    # the official value depends on the split for the invariant and composite hypotheses
    for hyp in (3, 5, 6, 7, 8, 9):
        assert abs(meta["losses"][f"hyp{hyp}.world2"]["loss"] - meta["losses"][f"hyp{hyp}.world4"]["loss"]) > 1e-3


@pytest.mark.parametrize("hyp", HYPS)
@pytest.mark.parametrize("world", [2, 4])
def test_official_exact_equals_official_code(hyp, world):
    tensors, meta = fixture()
    loss, grads = loss_and_grads(objective(hyp, "official_exact", world), inputs(tensors, meta, hyp))
    assert abs(loss - meta["losses"][f"hyp{hyp}.world{world}"]["loss"]) < TOL
    for m, g in grads.items():  # gradients only through the queries, as the official step
        assert (g - tensors[f"grad.hyp{hyp}.world{world}.{m}"]).abs().max() < TOL


@pytest.mark.parametrize("hyp", HYPS)
def test_official_exact_one_sample_per_rank(hyp):
    tensors, meta = fixture()
    loss, _ = objective(hyp, "official_exact", 8)(inputs(tensors, meta, hyp))
    assert abs(loss.item() - meta["losses"][f"hyp{hyp}.world8"]["loss"]) < TOL


@pytest.mark.parametrize("hyp", [1, 2, 4])
def test_official_equals_official_code_where_that_is_split_independent(hyp):
    tensors, meta = fixture()
    loss, grads = loss_and_grads(objective(hyp, "official"), inputs(tensors, meta, hyp))
    for world in (2, 4):
        assert abs(loss - meta["losses"][f"hyp{hyp}.world{world}"]["loss"]) < TOL
        for m, g in grads.items():
            assert (g - tensors[f"grad.hyp{hyp}.world{world}.{m}"]).abs().max() < TOL


@pytest.mark.parametrize("hyp", [3, 8, 9])
def test_official_differs_from_exact_where_the_official_code_repeats_negatives(hyp):
    tensors, meta = fixture()
    loss, _ = objective(hyp, "official")(inputs(tensors, meta, hyp))
    assert all(abs(loss.item() - meta["losses"][f"hyp{hyp}.world{w}"]["loss"]) > 1e-2 for w in (2, 4, 8))


def test_simulated_ranks_are_refused_where_they_mean_nothing():
    with pytest.raises(ConfigError, match="gdt.simulate_ranks"):
        objective(8, "official", 2)
    tensors, meta = fixture()
    with pytest.raises(ValueError, match="gdt.simulate_ranks=3"):
        objective(8, "official_exact", 3)(inputs(tensors, meta, 8))


# real processes: the distributed forms use the ranks as they are

def _rank_main(rank: int, world: int) -> dict:
    tensors, meta = fixture()
    n = meta["n"] // world
    rows = slice(rank * n, (rank + 1) * n)
    forms = ("official", "official_exact") if world == 2 else ("official",)
    return {(form, hyp): loss_and_grads(objective(hyp, form), inputs(tensors, meta, hyp, rows))
            for form in forms for hyp in HYPS}


@pytest.fixture(scope="module")
def ranks():
    return {world: run_distributed(_rank_main, world) for world in (2, 4)}


@pytest.mark.distributed
def test_official_exact_on_two_real_ranks_equals_official_code(ranks):
    tensors, meta = fixture()
    for hyp in HYPS:
        want = meta["losses"][f"hyp{hyp}.world2"]
        got = [r[("official_exact", hyp)] for r in ranks[2]]
        for r, (loss, _) in enumerate(got):  # each rank's own loss, as the official rank's
            assert abs(loss - want["ranks"][r]) < TOL
        for m in ("video", "audio"):
            # a rank's input gradient is that of its own loss: world x that of the mean
            grad = torch.cat([g[m] for _, g in got]) / 2
            assert (grad - tensors[f"grad.hyp{hyp}.world2.{m}"]).abs().max() < TOL


@pytest.mark.distributed
def test_official_has_one_value_at_one_two_and_four_ranks(ranks):
    tensors, meta = fixture()
    for hyp in HYPS:
        single, single_grads = loss_and_grads(objective(hyp, "official"), inputs(tensors, meta, hyp))
        for world in (2, 4):
            got = [r[("official", hyp)] for r in ranks[world]]
            assert abs(sum(loss for loss, _ in got) / world - single) < TOL
            for m in ("video", "audio"):  # scaling contract of nce.py: world x before averaging
                grad = torch.cat([g[m] for _, g in got]) / world
                assert (grad - single_grads[m]).abs().max() < TOL
