"""Sinkhorn self-labelling vs POT's log-domain solver, marginals, and a real 2-rank run.

Run: .venv/bin/python -m pytest -q tests/objectives/test_sinkhorn.py

POT (test-only dependency) solves the same problem: cost M = -log P^T (K x N),
reg = 1/lambda, a = cluster marginals, b = 1/N; its plan is Q^T.
"""

import math
import os
import socket
import tempfile
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline.objectives.marginals import gauss_marginals, target_marginals, zipf_marginals
from pipeline.objectives.sinkhorn import SinkhornConfig, sinkhorn_knopp

LAM = 25.0


def log_probs(n, k, std=2.0, seed=0, dead=None):
    """log_softmax of Gaussian logits; `dead` clusters are 15 nats less likely everywhere,
    so at lambda=25 their kernel columns underflow float32 entirely."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * std
    if dead is not None:
        logits[:, dead] -= 15.0
    return torch.log_softmax(logits, 1)


def pot_plan(log_p, a, n_iters, tol):
    import ot  # imported lazily: keeps the spawned ranks' start-up short

    n = log_p.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan, log = ot.bregman.sinkhorn_log(a.numpy(), np.full(n, 1.0 / n), (-log_p.T).numpy(),
                                            1.0 / LAM, numItermax=n_iters,
                                            stopThr=tol / math.sqrt(n), log=True)
    return plan, log["niter"] + 1


def our_plan(log_p, res):
    return torch.exp(LAM * log_p.double() + res.log_r + res.log_c[:, None]).T.numpy()


@pytest.mark.parametrize("native", [True, False], ids=["native", "torch"])
@pytest.mark.parametrize("cache_gb", [4.0, 0.0], ids=["cached", "streamed"])
@pytest.mark.parametrize("dead", [None, [3]], ids=["normal", "dead_cluster"])
def test_matches_pot_sinkhorn_log(native, cache_gb, dead):
    log_p = log_probs(400, 12, std=1.0, dead=dead).float()
    cfg = SinkhornConfig(lambda_=LAM, n_iters=3000, tol=1e-6, cache_gb=cache_gb, chunk_rows=160,
                         native=native, threads=2)
    res = sinkhorn_knopp(log_p, cfg)
    _, pot_iters = pot_plan(log_p.double(), res.marginals, 3000, 1e-6)
    plan, _ = pot_plan(log_p.double(), res.marginals, res.n_iters, 0.0)  # same iterate as ours
    ours = our_plan(log_p, res)
    assert res.native == native  # the numba kernels ran (or, for native=False, torch ops)
    assert res.cached == (cache_gb > 0)
    # Same stopping rule; float32 vs float64 rounding may move a crossing by one check.
    assert res.converged and abs(res.n_iters - pot_iters) <= cfg.check_every
    rtol = 1e-5 if dead is None else 1e-4  # |lambda*log p| ~ 400 on dead columns: float32 rounding
    np.testing.assert_allclose(ours, plan, rtol=rtol, atol=rtol * plan.max())
    assert torch.equal(res.labels, torch.from_numpy(plan.argmax(0)))
    if dead is not None and cache_gb > 0:
        assert res.kernel_builds > 1  # the underflowing column forced a re-absorption


def test_fixed_iterations_match_pot_scaling():
    """With tol = 0 both run exactly n_iters (the benchmark's setting), far from converged."""
    import ot

    log_p = log_probs(600, 30, std=3.0, seed=1)
    res = sinkhorn_knopp(log_p, SinkhornConfig(lambda_=LAM, n_iters=7, tol=0.0))
    a, b = res.marginals.numpy(), np.full(600, 1 / 600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = ot.sinkhorn(a, b, (-log_p.T).numpy(), 1 / LAM, method="sinkhorn", numItermax=7, stopThr=0.0)
    assert res.n_iters == 7 and not res.converged
    np.testing.assert_allclose(our_plan(log_p, res), plan, rtol=1e-5, atol=1e-5 * plan.max())
    assert torch.equal(res.labels, torch.from_numpy(plan.argmax(0)))


@pytest.mark.parametrize("kind", ["uniform", "gauss", "zipf"])
def test_marginals_met_and_match_pot(kind):
    log_p = log_probs(500, 16, seed=2)
    cfg = SinkhornConfig(lambda_=LAM, n_iters=2000, tol=1e-6, marginals=kind, zipf_exponent=1.2)
    res = sinkhorn_knopp(log_p, cfg, return_soft=True)
    sizes = torch.bincount(log_p.argmax(1), minlength=16)
    assert torch.allclose(res.marginals, target_marginals(kind, 16, sizes, 1.2, 0))
    q = our_plan(log_p, res)
    assert res.converged
    np.testing.assert_allclose(q.sum(1), res.marginals.numpy(), rtol=1e-5)  # clusters: exact
    np.testing.assert_allclose(q.sum(0), np.full(500, 1 / 500), rtol=1e-4)  # samples: within tol
    plan, _ = pot_plan(log_p, res.marginals, 2000, 1e-6)
    assert torch.equal(res.labels, torch.from_numpy(plan.argmax(0)))
    assert torch.allclose(res.soft.sum(1), torch.ones(500), atol=1e-5)
    np.testing.assert_allclose(res.soft.numpy(), (plan / plan.sum(0)).T, atol=1e-5)
    assert torch.equal(res.soft.argmax(1), res.labels)


def test_marginal_constructors():
    sizes = torch.tensor([5.0, 50.0, 20.0, 1.0, 20.0])
    g = gauss_marginals(5, sizes, seed=3)
    assert torch.equal(g, gauss_marginals(5, sizes, seed=3)) and not torch.equal(g, gauss_marginals(5, sizes, seed=4))
    assert g.sum().item() == pytest.approx(1.0) and (g > 0).all()
    order = torch.argsort(sizes, descending=True, stable=True)
    assert torch.all(g[order][:-1] >= g[order][1:])  # biggest cluster gets the biggest target
    z = zipf_marginals(5, 2.0, sizes)
    expected = torch.tensor([1, 1 / 4, 1 / 9, 1 / 16, 1 / 25], dtype=torch.float64)
    assert torch.allclose(z[order], expected / expected.sum())
    assert torch.allclose(target_marginals("uniform", 4), torch.full((4,), 0.25, dtype=torch.float64))
    with pytest.raises(ValueError):
        target_marginals("pareto", 4)


def test_low_precision_input_untouched_and_consistent():
    log_p = log_probs(300, 10, seed=5)
    before = log_p.clone()
    res64 = sinkhorn_knopp(log_p, SinkhornConfig(n_iters=300, tol=1e-6))
    assert torch.equal(log_p, before)
    half = log_p.half()
    res16 = sinkhorn_knopp(half, SinkhornConfig(n_iters=300, tol=1e-6, cache_gb=0.0))
    ref = sinkhorn_knopp(half.double(), SinkhornConfig(n_iters=300, tol=1e-6))
    assert torch.equal(res16.labels, ref.labels)
    assert torch.allclose(res16.log_r - res16.log_r.mean(), ref.log_r - ref.log_r.mean(), atol=1e-4)
    assert res64.labels.shape == (300,) and res64.labels.dtype == torch.long


@pytest.mark.parametrize("cache_gb", [4.0, 0.0], ids=["cached", "streamed"])
def test_native_threads_agree_bitwise(cache_gb):
    """Fixed row blocks summed in block order: 1, 2 or 3 threads give identical bits."""
    log_p = log_probs(4000, 150, seed=6).half()
    runs = [sinkhorn_knopp(log_p, SinkhornConfig(n_iters=40, tol=0.0, cache_gb=cache_gb, threads=t))
            for t in (1, 2, 3)]
    assert all(r.native for r in runs)
    for r in runs[1:]:
        assert torch.equal(runs[0].labels, r.labels) and torch.equal(runs[0].log_r, r.log_r)


def test_strided_head_slice_uses_native_path():
    """SeLaVi stores log-probs as (N, heads, K) and solves logp[:, j]: rows with a stride."""
    logp = torch.stack([log_probs(500, 20, seed=s) for s in (7, 8, 9)], 1).half()
    cfg = SinkhornConfig(n_iters=50, tol=0.0, cache_gb=0.0)
    sliced, copied = sinkhorn_knopp(logp[:, 1], cfg), sinkhorn_knopp(logp[:, 1].contiguous(), cfg)
    assert sliced.native and copied.native
    assert torch.equal(sliced.labels, copied.labels) and torch.equal(sliced.log_r, copied.log_r)


def test_native_kernels_keep_denormals():
    """The kernels are compiled without fast-math: nothing flushes denormals process-wide."""
    res = sinkhorn_knopp(log_probs(200, 8).float(), SinkhornConfig(n_iters=5, native=True))
    assert res.native
    tiny = torch.tensor(1e-40, dtype=torch.float32)
    assert (tiny * 1.0).item() > 0 and np.float32(1e-40) * np.float32(1.0) > 0


def test_kernel_half_conversion_exact_and_exp_within_2_ulp():
    """Every float16 bit pattern converts exactly (normal, subnormal, zero, inf, nan), and
    the polynomial exp is within 2 ulp of float64's over the whole range the solver uses."""
    from pipeline.objectives import sinkhorn_kernels as kern

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = np.empty(bits.size, np.float32)
    kern._half_row(bits, got, np.float32(0), np.float32(1), np.zeros(bits.size, np.float32))
    want = bits.view(np.float16).astype(np.float32)
    assert np.array_equal(got, want, equal_nan=True)
    d = np.linspace(-100, 0, 200001, dtype=np.float32)
    e = d.copy()
    kern._exp_shifted(e, np.float32(0), np.empty(d.size, np.uint32))
    e = e.astype(np.float64) * 2.0 ** -kern.SCALE_EXP  # kept scaled by 2^64 (exact)
    ref = np.exp(np.maximum(d, kern.FLOOR).astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert (np.abs(e - ref) / ulp).max() <= 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, split, cfgs, out_dir):
    torch.set_num_threads(1)  # two ranks share the test machine's cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        log_p = log_probs(sum(split), 16, dead=[5]).float()[sum(split[:rank]):sum(split[: rank + 1])]
        for i, cfg in enumerate(cfgs):
            res = sinkhorn_knopp(log_p, cfg)
            torch.save({"labels": res.labels, "log_r": res.log_r, "n_iters": res.n_iters,
                        "marginals": res.marginals}, os.path.join(out_dir, f"{i}_{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_match_one_rank():
    """Real 2-process gloo group, uneven row split, gauss prior (all-reduced sizes) and a
    dead cluster (exact column fallback with MAX all-reduce); native cached, torch streamed."""
    split = (263, 237)
    cfgs = [SinkhornConfig(lambda_=LAM, n_iters=60, tol=1e-6, marginals="gauss", cache_gb=c, native=nat)
            for c, nat in ((4.0, True), (0.0, False))]
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_rank_main, args=(2, _free_port(), split, cfgs, out_dir), nprocs=2, join=True)
        runs = [[torch.load(os.path.join(out_dir, f"{i}_{r}.pt")) for r in range(2)] for i in range(len(cfgs))]
    for cfg, parts in zip(cfgs, runs):
        single = sinkhorn_knopp(log_probs(sum(split), 16, dead=[5]).float(), cfg)
        assert torch.equal(torch.cat([p["labels"] for p in parts]), single.labels)
        for p in parts:
            assert p["n_iters"] == single.n_iters
            assert torch.equal(p["marginals"], single.marginals)  # same gauss draw on every rank
            assert torch.allclose(p["log_r"], single.log_r, atol=1e-5)


def test_benchmark_small(tmp_path):
    from pipeline.bench.sinkhorn import Config, run

    out = run(Config(n=3000, k=40, iters=20, json=str(tmp_path / "b.json")))
    for key in ("seconds", "pot_seconds", "speedup", "label_agreement", "peak_rss_gb", "n", "k", "iters"):
        assert key in out
    assert out["label_agreement"] == 1.0 and out["iters"] == out["pot_iters"] == 20
    assert (tmp_path / "b.json").exists()
    assert "pot_seconds" not in run(Config(n=500, k=20, iters=5, compare_pot=False))
