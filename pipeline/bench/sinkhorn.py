"""Benchmark: our Sinkhorn-Knopp self-labelling vs POT on the same problem.

Both solvers get identical log-probabilities, iteration count and tolerance (POT's
stopThr = tol / sqrt(N), the same quantity in its units). POT's plain ``ot.sinkhorn``
(float64 scaling) is the peer for speed and for the reference labels. At ImageNet size
(N=1.28M, K=3000) POT cannot hold the float64 problem, so ``compare_pot=False`` runs
ours alone to measure time and peak memory.

The log-probs are generated chunkwise straight into a float16 buffer, because a float32
N x K intermediate would by itself exceed the memory budget being measured.
"""

from __future__ import annotations

import math
import os
import resource
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch

from pipeline.io.atomic import write_json
from pipeline.objectives.marginals import KINDS
from pipeline.objectives.sinkhorn import SinkhornConfig, sinkhorn_knopp

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class Config:
    n: int = field(default=50000, metadata={"help": "Samples N.", "min": 1})
    k: int = field(default=1000, metadata={"help": "Clusters K.", "min": 1})
    lambda_: float = field(default=25.0, metadata={"help": "Sinkhorn lambda (POT reg = 1/lambda).", "above": 0})
    iters: int = field(default=100, metadata={"help": "Max iterations, same for both solvers.", "min": 1})
    tol: float = field(default=0.0, metadata={
        "help": "RMS relative sample-marginal error to stop at (POT stopThr = tol/sqrt(N)); "
                "0 runs exactly `iters` iterations.", "min": 0})
    seed: int = field(default=0, metadata={"help": "Seed of the synthetic logits.", "min": 0})
    logit_std: float = field(default=2.0, metadata={
        "help": "Std of the synthetic logits before log_softmax (peakedness of P).", "above": 0})
    dtype: str = field(default="float16", metadata={
        "help": f"Storage dtype of the log-probs, one of {tuple(_DTYPES)}."})
    marginals: str = field(default="uniform", metadata={"help": "uniform | gauss | zipf.", "choices": KINDS})
    cache_gb: float = field(default=4.0, metadata={"help": "SinkhornConfig.cache_gb.", "min": 0})
    native: bool = field(default=True, metadata={"help": "SinkhornConfig.native (fused numba row kernels)."})
    threads: int = field(default=0, metadata={"help": "SinkhornConfig.threads (0 = torch's).", "min": 0})
    repeats: int = field(default=1, metadata={
        "help": "Time each solver this many times, alternating, and keep the fastest "
                "(the load of a shared machine varies within seconds).", "min": 1})
    compare_pot: bool = field(default=True, metadata={
        "help": "Also run POT (needs ~5 float64 K x N arrays; off at ImageNet size)."})
    heads: int = field(default=1, metadata={
        "help": "> 1: SeLaVi's labelling case, heads x (N x K) float16 log-probs streamed to disk "
                "(as the labelling pass writes them) and solved one memory-mapped head at a time; "
                "ours alone. E.g. n=2000000 k=400 heads=10.", "min": 1})
    scratch: str = field(default="", metadata={"help": "heads > 1: folder for the log-prob files (default: the temp dir)"})
    json: str = field(default="", metadata={"help": "Write the result dict here (JSON) if set."})


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux


def make_log_probs(n: int, k: int, std: float, seed: int, dtype: torch.dtype) -> torch.Tensor:
    """log_softmax(N(0, std^2) logits), built chunkwise into an (n, k) `dtype` tensor."""
    out = torch.empty(n, k, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    rows = max(1, (1 << 22) // k)
    for s in range(0, n, rows):
        e = min(s + rows, n)
        logits = torch.randn(e - s, k, generator=gen).mul_(std)
        out[s:e] = torch.log_softmax(logits, 1)
    return out


def _run_pot(log_p: torch.Tensor, a: torch.Tensor, cfg: Config) -> tuple[float, float, torch.Tensor, int]:
    import ot

    m = (-log_p.t().double()).numpy()  # cost M = -log P^T, K x N
    a_np, b_np = a.double().numpy(), torch.full((cfg.n,), 1.0 / cfg.n, dtype=torch.float64).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge" is expected with tol = 0
        t0, c0 = time.perf_counter(), time.process_time()
        plan, log = ot.sinkhorn(a_np, b_np, m, 1.0 / cfg.lambda_, method="sinkhorn",
                                numItermax=cfg.iters, stopThr=cfg.tol / math.sqrt(cfg.n), log=True)
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    labels = torch.from_numpy(plan.argmax(0))
    return seconds, cpu_seconds, labels, int(log["niter"]) + 1


def run_heads(cfg: Config) -> dict:
    """The labelling pass's problem: ``heads`` solves over memory-mapped N x K float16."""
    import tempfile

    from pipeline.train.logprob_store import LogProbStore

    load_before = os.getloadavg()[0]
    scfg = SinkhornConfig(lambda_=cfg.lambda_, n_iters=cfg.iters, tol=cfg.tol, marginals=cfg.marginals,
                          cache_gb=cfg.cache_gb, native=cfg.native, threads=cfg.threads)
    gen, per_head, res = torch.Generator().manual_seed(cfg.seed), [], None
    rows = max(1, (1 << 22) // (cfg.k * cfg.heads))
    with LogProbStore(cfg.scratch or tempfile.gettempdir(), cfg.heads, cfg.k, ".bench") as store:
        t0 = time.perf_counter()
        for s in range(0, cfg.n, rows):
            logits = torch.randn(min(rows, cfg.n - s), cfg.heads, cfg.k, generator=gen).mul_(cfg.logit_std)
            store.append(torch.log_softmax(logits, -1))
        gen_seconds = time.perf_counter() - t0
        for j in range(cfg.heads):
            t0, c0 = time.perf_counter(), time.process_time()
            res = sinkhorn_knopp(store.head(j), scfg)
            per_head.append({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                             "iters": res.n_iters, "err": res.err, "converged": res.converged})
    seconds = sum(h["seconds"] for h in per_head)
    out = {"n": cfg.n, "k": cfg.k, "heads": cfg.heads, "lambda_": cfg.lambda_, "iters": cfg.iters,
           "tol": cfg.tol, "dtype": "float16", "seconds": seconds,
           "cpu_seconds": sum(h["cpu_seconds"] for h in per_head),
           "seconds_per_head": seconds / cfg.heads,
           "seconds_per_iter": seconds / max(sum(h["iters"] for h in per_head), 1), "gen_seconds": gen_seconds,
           "per_head": per_head, "kernel_cached": res.cached, "native": res.native,
           "logprob_file_gb": cfg.n * cfg.k * cfg.heads * 2 / 1e9,
           "peak_rss_gb": _peak_rss_gb(), "torch_threads": torch.get_num_threads(),
           "torch": torch.__version__, "config": asdict(cfg),
           "load_avg_1m": [load_before, os.getloadavg()[0]]}
    if cfg.json:
        write_json(cfg.json, out, indent=2)
    return out


def _compile_kernels() -> float:
    """Seconds numba takes to compile the row kernels (timed apart from the solves)."""
    from pipeline.objectives.sinkhorn_rows import kernels

    t0 = time.perf_counter()
    kernels()
    return time.perf_counter() - t0


def run(cfg: Config) -> dict:
    if cfg.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}")
    if cfg.heads > 1:
        return run_heads(cfg)
    load_before = os.getloadavg()[0]  # the machine may be shared: record its load
    t0 = time.perf_counter()
    log_p = make_log_probs(cfg.n, cfg.k, cfg.logit_std, cfg.seed, _DTYPES[cfg.dtype])
    gen_seconds = time.perf_counter() - t0
    scfg = SinkhornConfig(lambda_=cfg.lambda_, n_iters=cfg.iters, tol=cfg.tol, marginals=cfg.marginals,
                          cache_gb=cfg.cache_gb, native=cfg.native, threads=cfg.threads)
    seconds = cpu_seconds = pot_seconds = pot_cpu_seconds = math.inf
    res, rss = None, 0.0
    compile_seconds = _compile_kernels() if cfg.native else 0.0  # once per process, not the solve's cost
    for _ in range(max(1, cfg.repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        res = sinkhorn_knopp(log_p, scfg)
        seconds = min(seconds, time.perf_counter() - t0)
        cpu_seconds = min(cpu_seconds, time.process_time() - c0)  # all threads; less load-dependent
        rss = rss or _peak_rss_gb()  # ours alone, before POT's float64 arrays exist
        if cfg.compare_pot:
            t, c, pot_labels, pot_iters = _run_pot(log_p, res.marginals, cfg)
            pot_seconds, pot_cpu_seconds = min(pot_seconds, t), min(pot_cpu_seconds, c)
    out = {"n": cfg.n, "k": cfg.k, "lambda_": cfg.lambda_, "iters": res.n_iters, "tol": cfg.tol,
           "dtype": cfg.dtype, "seconds": seconds, "cpu_seconds": cpu_seconds, "gen_seconds": gen_seconds,
           "seconds_per_iter": seconds / max(res.n_iters, 1), "err": res.err,
           "converged": res.converged, "kernel_cached": res.cached, "native": res.native,
           "compile_seconds": compile_seconds,
           "kernel_builds": res.kernel_builds, "peak_rss_gb": rss,
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "config": asdict(cfg)}
    if cfg.compare_pot:
        import ot

        out.update(pot_seconds=pot_seconds, pot_cpu_seconds=pot_cpu_seconds, pot_iters=pot_iters,
                   speedup=pot_seconds / seconds, cpu_speedup=pot_cpu_seconds / cpu_seconds,
                   label_agreement=float((pot_labels == res.labels).double().mean()),
                   peak_rss_with_pot_gb=_peak_rss_gb(), pot=ot.__version__)
    out["load_avg_1m"] = [load_before, os.getloadavg()[0]]
    if cfg.json:
        write_json(cfg.json, out, indent=2)
    return out
