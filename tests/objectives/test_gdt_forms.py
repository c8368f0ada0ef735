"""The GDT objective's forms (``gdt.form``) on one process, against loops from their definitions.

``official``: per pairwise term and query, a softmax over the positive, every other
sample's two views of the pair (other modality) and, for a variant term, the own hard
negative; keys carry no gradient. Equality with the public code itself (``official_exact``)
is in tests/parity/test_gdt_loss.py; the multi-rank equivalence in test_distributed_loss.py.
"""
import pytest
import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError
from pipeline.objectives.gdt import GDT, MODES, GDTConfig
from pipeline.objectives.gdt_official import hypothesis, terms
from pipeline.objectives.nce import TemperatureConfig

T = 0.1


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def reference_official(v, a, reversal, shift, temp):
    v, a = F.normalize(v, dim=-1), F.normalize(a, dim=-1)
    n, total = v.shape[0], 0.0
    plan = terms(reversal, shift)
    for t in plan:
        views = [t.a] if t.b is None else [t.a, t.b]
        pairs = [(t.a, t.a)] if t.b is None else (
            [(t.a, t.b), (t.b, t.a)] if t.kind == "invariant" else [(t.a, t.a), (t.b, t.b)])
        for q, keys in ((v, a.detach()), (a, v.detach())):
            for qv, pv in pairs:
                hard = [w for w in views if w != pv] if t.kind == "variant" else []
                for i in range(n):
                    cands = [(j, w) for j in range(n) if j != i for w in views] + [(i, pv)] + [(i, w) for w in hard]
                    scores = torch.stack([q[i, qv] @ keys[j, w] for j, w in cands]) / temp
                    ce = torch.logsumexp(scores, 0) - q[i, qv] @ keys[i, pv] / temp
                    total = total + t.weight * 0.5 / len(pairs) * ce / n
    return total


@pytest.mark.parametrize("shift", MODES)
@pytest.mark.parametrize("reversal", MODES)
def test_official_matches_reference(reversal, shift):
    cfg = GDTConfig(reversal=reversal, shift=shift, form="official", temperature=TemperatureConfig(value=T))
    k = len(cfg.layout())
    v, a = rand(5, k, 6, seed=1).requires_grad_(), rand(5, k, 6, seed=2).requires_grad_()
    loss, metrics = GDT(cfg)({"video": v, "audio": a})
    ref = reference_official(v, a, reversal, shift, T)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-10)
    got, want = torch.autograd.grad(loss, (v, a)), torch.autograd.grad(ref, (v, a))
    assert all(torch.allclose(g, w, atol=1e-12) for g, w in zip(got, want))
    assert 0 <= metrics["acc_v2a"] <= 1 and metrics["global_batch"] == 5


def test_hypothesis_numbers_and_weights_follow_the_public_code():
    assert [hypothesis(r, s) for r in ("off", "variant", "invariant") for s in ("off", "variant", "invariant")] \
        == [1, 4, 5, 2, 6, 8, 3, 7, 9]
    plan = terms("variant", "invariant")  # hypothesis 8: 0.2 x (shift base + 2 reversal + 2 shift terms)
    assert [(t.kind, t.a, t.b) for t in plan] == [("base", 0, 2), ("variant", 0, 1), ("variant", 2, 3),
                                                  ("invariant", 0, 2), ("invariant", 1, 3)]
    assert all(t.weight == pytest.approx(0.2) for t in plan)
    assert [t.weight for t in terms("invariant", "invariant")] == pytest.approx([1 / 6] * 6)
    assert [(t.kind, t.weight) for t in terms("off", "invariant")] == [("base", 0.5), ("invariant", 0.5)]


def test_forms_agree_in_the_base_case_and_differ_for_compositions():
    v, a = rand(6, 4, 8, seed=3), rand(6, 4, 8, seed=4)
    base = {f: GDT(GDTConfig(form=f))({"video": v[:, :1], "audio": a[:, :1]})[0].item()
            for f in ("joint", "official", "official_exact")}
    assert max(base.values()) - min(base.values()) < 1e-12
    comp = {f: GDT(GDTConfig(reversal="variant", shift="invariant", form=f))({"video": v, "audio": a})[0].item()
            for f in ("joint", "official")}
    assert abs(comp["joint"] - comp["official"]) > 1e-2


def test_form_settings_are_checked():
    with pytest.raises(ConfigError, match="gdt.form: unknown form 'paper'"):
        GDT(GDTConfig(form="paper"))
    with pytest.raises(ConfigError, match="gdt.simulate_ranks=2.*gdt.form=joint"):
        GDT(GDTConfig(simulate_ranks=2))
