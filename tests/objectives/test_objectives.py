"""Contrastive objectives on one process: InfoNCE, NT-Xent and GDT against references.

References are written from the definitions (explicit loops over rows and candidates),
pytorch-metric-learning's NTXentLoss, and closed forms on constructed embeddings whose
answer is known. The multi-rank equivalence lives in test_distributed_loss.py.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import NTXentLoss

from pipeline.errors import ConfigError
from pipeline.objectives.gather import gather_with_grad, world
from pipeline.objectives.gdt import GDT, MODES, GDTConfig, relations
from pipeline.objectives.nce import CrossModalNCE, NCEConfig, Temperature, TemperatureConfig, info_nce
from pipeline.objectives.simclr import SimCLR, SimCLRConfig, nt_xent

T = 0.1


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_no_process_group_is_a_noop():
    x = rand(3, 4)
    assert world() == (0, 1)
    out, offset = gather_with_grad(x)
    assert out is x and offset == 0


def test_info_nce_matches_hand_written_cross_entropy():
    x, y = rand(5, 4, seed=1).requires_grad_(), rand(5, 4, seed=2).requires_grad_()
    loss, metrics = info_nce(x, y, T)
    xn, yn = F.normalize(x, dim=1), F.normalize(y, dim=1)
    xd, yd = xn.detach(), yn.detach()
    terms = []
    for q, k in ((xd, yd), (yd, xd)):
        for i in range(5):
            scores = [float(q[i] @ k[j]) / T for j in range(5)]  # plain floats
            terms.append(-(scores[i] - math.log(sum(math.exp(s) for s in scores))))
    ref = 0.5 * (sum(terms[:5]) / 5 + sum(terms[5:]) / 5)
    assert loss.item() == pytest.approx(ref, abs=1e-10)
    # gradients against the same definition written with torch ops
    gx, gy = torch.autograd.grad(loss, (x, y))
    ref_loss = 0.5 * (F.cross_entropy(xn @ yn.t() / T, torch.arange(5))
                      + F.cross_entropy(yn @ xn.t() / T, torch.arange(5)))
    rx, ry = torch.autograd.grad(ref_loss, (x, y))
    assert torch.allclose(gx, rx) and torch.allclose(gy, ry)
    aligned = info_nce(x, x, T)[1]  # identical modalities: every row finds itself
    assert aligned["acc_xy"] == 1 and aligned["acc_yx"] == 1
    assert 0 <= metrics["acc_xy"] <= 1


def test_nce_objective_pairs_weights_and_errors():
    v, a, t = rand(6, 8, seed=1), rand(6, 1, 8, seed=2), rand(6, 8, seed=3)
    obj = CrossModalNCE(NCEConfig(pairs=["video-audio", "video-text"], weights=[0.7, 0.3]))
    loss, m = obj({"video": v, "audio": a, "text": t})
    ref = 0.7 * info_nce(v, a[:, 0], 0.07)[0] + 0.3 * info_nce(v, t, 0.07)[0]
    assert torch.allclose(loss, ref)
    assert {"loss_video_audio", "acc_video2text", "acc_text2video", "temperature"} <= set(m)
    with pytest.raises(ValueError, match="needs 'text'.*returned"):
        obj({"video": v, "audio": a})
    with pytest.raises(ValueError, match=r"\[B, D\].*gdt or simclr"):
        CrossModalNCE(NCEConfig())({"video": rand(6, 2, 8), "audio": a})
    with pytest.raises(ConfigError, match="modality-modality"):
        CrossModalNCE(NCEConfig(pairs=["video"]))
    with pytest.raises(ConfigError, match="2 weights for 1 pairs"):
        CrossModalNCE(NCEConfig(weights=[0.5, 0.5]))


def test_learned_temperature_is_log_parameterised_and_clamped():
    temp = Temperature(TemperatureConfig(value=0.07, learn=True, min=0.01, max=1.0))
    assert [n for n, _ in temp.named_parameters()] == ["log_t"]
    assert temp().item() == pytest.approx(0.07)
    obj = CrossModalNCE(NCEConfig(temperature=TemperatureConfig(value=0.07, learn=True)))
    loss, _ = obj({"video": rand(4, 8, seed=1), "audio": rand(4, 8, seed=2)})
    loss.backward()
    assert obj.temperature.log_t.grad is not None and obj.temperature.log_t.grad != 0
    with torch.no_grad():
        temp.log_t.fill_(math.log(0.001))  # overshot below the minimum
    assert temp().item() == pytest.approx(0.01)
    for sign, kept in ((1.0, False), (-1.0, True)):  # descent on -grad: only a way back up is kept
        temp.log_t.grad = None
        (sign * temp()).backward()
        assert (temp.log_t.grad != 0).item() == kept
    assert Temperature(TemperatureConfig(value=0.2))() == 0.2
    assert not list(Temperature(TemperatureConfig()).parameters())  # fixed: nothing to optimise
    with pytest.raises(ConfigError, match="min <= value <= max"):
        Temperature(TemperatureConfig(value=2.0, learn=True))


@pytest.mark.parametrize("n,temp", [(4, 0.07), (7, 0.5), (16, 0.1)])
def test_nt_xent_matches_pytorch_metric_learning(n, temp):
    z1, z2 = rand(n, 16, seed=n), rand(n, 16, seed=n + 1)
    ref = NTXentLoss(temperature=temp)(torch.cat([z1, z2]), torch.arange(n).repeat(2))
    loss, m = nt_xent(z1, z2, temp)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-6)
    obj_loss, _ = SimCLR(SimCLRConfig(temperature=TemperatureConfig(value=temp)))({"video": torch.stack([z1, z2], 1)})
    assert torch.allclose(obj_loss, loss)
    assert nt_xent(z1, z1.clone(), temp)[1]["acc"] == 1  # identical views find each other


def test_half_precision_embeddings_are_scored_in_float32():
    x, y = rand(8, 16, seed=1).float(), rand(8, 16, seed=2).float()
    ref = info_nce(x.bfloat16().float(), y.bfloat16().float(), 0.07)[0]
    loss = info_nce(x.bfloat16(), y.bfloat16(), 0.07)[0]
    assert loss.dtype == torch.float32 and torch.allclose(loss, ref)
    z = torch.stack([x, y], 1).half()
    assert SimCLR(SimCLRConfig())({"video": z})[0].dtype == torch.float32


def test_simclr_input_errors():
    obj = SimCLR(SimCLRConfig(modality="audio"))
    with pytest.raises(ValueError, match="needs 'audio'"):
        obj({"video": rand(4, 2, 8)})
    with pytest.raises(ValueError, match=r"\[B, 2, D\].*copies=2"):
        obj({"audio": rand(4, 3, 8)})


# ---------------------------------------------------------------- GDT

def reference_gdt(v, a, reversal, shift, temp):
    """Loops straight from the definition: per positive pair, softmax over the positive, all
    views of the other samples and the same sample's views that differ in a variant factor."""
    views = [(s, r) for s in range(2 if shift != "off" else 1) for r in range(2 if reversal != "off" else 1)]

    def distinct(p, q):  # differ in a variant transformation
        return (p[1] != q[1] and reversal == "variant") or (p[0] != q[0] and shift == "variant")

    n, k = v.shape[:2]
    v, a = F.normalize(v, dim=-1), F.normalize(a, dim=-1)
    means = []
    for q, keys in ((v, a), (a, v)):
        terms = []
        for i in range(n):
            for kq in range(k):
                for kp in range(k):
                    if distinct(views[kq], views[kp]):
                        continue  # not a positive
                    cands = [(j, kk) for j in range(n) if j != i for kk in range(k)]
                    cands += [(i, kp)] + [(i, kk) for kk in range(k) if distinct(views[kq], views[kk])]
                    scores = torch.stack([q[i, kq] @ keys[j, kk] for j, kk in cands]) / temp
                    terms.append(torch.logsumexp(scores, 0) - q[i, kq] @ keys[i, kp] / temp)
        means.append(torch.stack(terms).mean())
    return 0.5 * (means[0] + means[1])


@pytest.mark.parametrize("shift", MODES)
@pytest.mark.parametrize("reversal", MODES)
def test_gdt_matches_reference(reversal, shift):
    cfg = GDTConfig(reversal=reversal, shift=shift, temperature=TemperatureConfig(value=T))
    k = len(cfg.layout())
    v, a = rand(4, k, 6, seed=1).requires_grad_(), rand(4, k, 6, seed=2).requires_grad_()
    loss, metrics = GDT(cfg)({"video": v, "audio": a})
    ref = reference_gdt(v, a, reversal, shift, T)
    assert loss.item() == pytest.approx(ref.item(), abs=1e-10)
    got, want = torch.autograd.grad(loss, (v, a)), torch.autograd.grad(ref, (v, a))
    assert all(torch.allclose(g, w) for g, w in zip(got, want))
    assert ("sim_hard" in metrics) == ("variant" in (reversal, shift))


def test_gdt_without_transformations_is_symmetric_info_nce():
    v, a = rand(6, 8, seed=1), rand(6, 8, seed=2)
    obj = GDT(GDTConfig(temperature=TemperatureConfig(value=T)))
    ref = info_nce(v, a, T)[0]
    assert torch.allclose(obj({"video": v, "audio": a})[0], ref)
    assert torch.allclose(obj({"video": v[:, None], "audio": a[:, None]})[0], ref)


def test_gdt_relations_follow_the_modes():
    pos, hard = relations(GDTConfig(reversal="variant"))  # views [v, v_rev]
    assert torch.equal(pos, torch.eye(2, dtype=torch.bool)) and torch.equal(hard, ~pos)
    pos, hard = relations(GDTConfig(reversal="invariant"))  # the reversed audio is a positive too
    assert pos.all() and not hard.any()
    # views [s0, s0_rev, s1, s1_rev]: reversal variant, shift invariant -> positive iff same direction
    pos, hard = relations(GDTConfig(reversal="variant", shift="invariant"))
    same_dir = torch.tensor([[r == r2 for r2 in (0, 1, 0, 1)] for r in (0, 1, 0, 1)])
    assert torch.equal(pos, same_dir) and torch.equal(hard, ~same_dir)
    pos, _ = relations(GDTConfig(reversal="variant", shift="variant"))
    assert torch.equal(pos, torch.eye(4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="gdt.shift.*choose from"):
        relations(GDTConfig(shift="sometimes"))


# hard negatives per video view when every view of a sample has the same embedding
HARD_COUNT = {("off", "off"): 0, ("invariant", "invariant"): 0, ("variant", "off"): 1, ("off", "variant"): 1,
              ("variant", "invariant"): 2, ("invariant", "variant"): 2, ("variant", "variant"): 3}


@pytest.mark.parametrize("reversal,shift", list(HARD_COUNT))
def test_gdt_variant_adds_the_transformed_views_as_hard_negatives(reversal, shift):
    """All views of sample i (both modalities) = e_i: positives score 1/T, other samples 0,
    and each hard negative 1/T too, so loss = log((1 + h) e^(1/T) + (N - 1) K) - 1/T."""
    cfg = GDTConfig(reversal=reversal, shift=shift, temperature=TemperatureConfig(value=T))
    n, k = 5, len(cfg.layout())
    e = torch.eye(n, dtype=torch.float64)[:, None, :].repeat(1, k, 1)
    loss, _ = GDT(cfg)({"video": e, "audio": e.clone()})
    h = HARD_COUNT[(reversal, shift)]
    assert loss.item() == pytest.approx(math.log((1 + h) * math.exp(1 / T) + (n - 1) * k) - 1 / T, abs=1e-9)


@pytest.mark.parametrize("mode", ["invariant", "variant"])
def test_gdt_invariant_makes_the_transformed_other_modality_a_positive(mode):
    """Each view its own direction (v[i,k] = a[i,k] = e_(iK+k)), time reversal only. Variant:
    v_rev must match a_rev and differ from a, which this embedding satisfies (loss ~ 0).
    Invariant: (v, a_rev) is also a positive but scores 0 -> those terms cost log(1 + (N-1)K)."""
    cfg = GDTConfig(reversal=mode, temperature=TemperatureConfig(value=T))
    n, k = 5, 2
    e = torch.eye(n * k, dtype=torch.float64).reshape(n, k, n * k)
    loss, metrics = GDT(cfg)({"video": e, "audio": e.clone()})
    if mode == "variant":  # the positive scores 1/T against (n-1)k other-sample + (k-1) hard zeros
        matched = math.log(math.exp(1 / T) + n * k - 1) - 1 / T
        assert loss.item() == pytest.approx(matched, abs=1e-9) and metrics["acc_v2a"] == 1
    else:  # the sample's other positives leave the denominator: only (n-1)k zeros compete
        matched = math.log(math.exp(1 / T) + (n - 1) * k) - 1 / T
        unmatched = math.log(1 + (n - 1) * k)  # a cross-view positive scoring 0
        assert loss.item() == pytest.approx((k * matched + (k * k - k) * unmatched) / (k * k), abs=1e-9)


def test_gdt_view_contract_matches_the_loader():
    from pipeline.loader.sample import ClipConfig, view_layout
    for reversal in MODES:
        for shift in MODES:
            cfg = GDTConfig(reversal=reversal, shift=shift)
            loader = view_layout(ClipConfig(**cfg.loader_clip()))
            assert [(p, int(r)) for p, _copy, r in loader] == cfg.layout()
    obj = GDT(GDTConfig(reversal="variant", shift="invariant"))
    with pytest.raises(ValueError, match=r"\[B, 4, D\].*'positions': 2.*'reverse': True"):
        obj({"video": rand(3, 2, 8), "audio": rand(3, 2, 8)})
    with pytest.raises(ValueError, match="needs 'audio'"):
        obj({"video": rand(3, 4, 8)})
