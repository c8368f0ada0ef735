"""Distributed Sinkhorn-Knopp self-labelling (SeLa, Asano et al. 2020; SeLaVi 2020).

Self-labels are the entropic optimal transport plan Q = diag(c) P^lambda diag(r)
between N samples (mass b = 1/N each) and K clusters (target marginals a), i.e. POT's
problem with cost M = -log P^T, reg = 1/lambda; labels are argmax_k Q[n, k].

Design, driven by N = 1.28M x K = 3000 (a float32 copy alone is 15.4 GB):
- Rows stay on their rank; one fused pass per iteration computes the row scaling of
  each chunk and immediately adds the chunk's contribution to the K column sums, so
  only a K-vector (+2 scalars) is all-reduced per iteration (as in SwAV).
- Scaled float32 arithmetic with log-domain bookkeeping (float64 potentials): the
  kernel is stored as exp(lambda*log p + g - rowmax) with an absorbed potential g and
  re-absorbed whenever the remaining scaling spans > e^30, so nothing overflows.
  Columns whose mass underflows float32 (dead clusters at lambda = 25) are recomputed
  exactly in log domain, so results match POT's ``sinkhorn_log``.
- The float32 kernel is cached when it fits ``cache_gb`` (then an iteration is a single
  read of it); otherwise it is recomputed from the caller's (e.g. float16) log-probs
  every iteration, so peak memory is the input plus O(chunk * K). On CPU the pass runs
  in fused C row kernels (``sinkhorn_cpu``); elsewhere, or as fallback, in torch ops.
- Iterations, update order and the stopping check mirror POT (``sinkhorn_log``), so
  with the same iteration count both return the same plan up to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from pipeline.objectives import sinkhorn_cpu
from pipeline.objectives.marginals import KINDS, target_marginals

_FLOOR = -87.0  # exp() of anything lower is subnormal in float32 (and ~10x slower)
_ABSORB_RANGE = 30.0  # re-absorb once the pending scaling spans more than e^30


@dataclass
class SinkhornConfig:
    lambda_: float = field(default=25.0, metadata={
        "help": "Inverse entropic regularisation: Q ~ P^lambda (SeLa 25, SeLaVi 20).", "above": 0})
    n_iters: int = field(default=1000, metadata={
        "help": "Maximum Sinkhorn iterations (one row + one column update each).", "min": 1})
    tol: float = field(default=1e-4, metadata={
        "help": "Stop when the RMS relative error of the per-sample marginals, "
                "sqrt(mean((N * Q.sum(1) - 1)^2)), is below this. Equals POT's "
                "stopThr * sqrt(N). 0 runs all n_iters.", "min": 0})
    check_every: int = field(default=10, metadata={
        "help": "Evaluate the stopping error after iterations 1, 1+k, 1+2k, ... (POT: 10).", "min": 1})
    marginals: str = field(default="uniform", metadata={
        "help": f"Target cluster sizes: one of {KINDS}. gauss/zipf sizes are assigned in "
                "the order of the current (argmax) cluster sizes.", "choices": KINDS})
    zipf_exponent: float = field(default=1.0, metadata={
        "help": "Zipf prior: size of the r-th largest cluster ~ r^-exponent.", "min": 0})
    seed: int = field(default=0, metadata={
        "help": "Seed of the gauss prior's draw; identical on every rank.", "min": 0})
    chunk_rows: int = field(default=0, metadata={
        "help": "Rows per chunk of the fused pass; 0 = about 1M elements (cache sized).", "min": 0})
    cache_gb: float = field(default=4.0, metadata={
        "help": "Cache the float32 kernel (N_local*K*4 bytes) if it fits in this many GB; "
                "otherwise recompute it from the log-probs every iteration.", "min": 0})
    native: bool = field(default=True, metadata={
        "help": "On CPU with float16/float32 input, use the fused C row kernels "
                "(compiled on first use; falls back to torch ops if that fails)."})
    threads: int = field(default=0, metadata={
        "help": "Threads for the native kernels; 0 = torch.get_num_threads().", "min": 0})


@dataclass
class SinkhornResult:
    """Local rows' labels plus the potentials: Q[n,k] = exp(lambda*log_p + log_r[k] + log_c[n])."""

    labels: torch.Tensor  # (N_local,) int64 argmax_k Q[n, k]
    soft: torch.Tensor | None  # (N_local, K) float32 rows of Q normalised to sum 1
    log_r: torch.Tensor  # (K,) float64 cluster potential (POT's log u)
    log_c: torch.Tensor  # (N_local,) float64 sample potential (POT's log v)
    marginals: torch.Tensor  # (K,) float64 target cluster marginals (sum 1)
    n_iters: int  # iterations whose result is returned
    err: float  # last measured stopping error (nan if never measured)
    converged: bool
    cached: bool  # whether the float32 kernel was cached
    kernel_builds: int  # passes that (re)built the kernel from the log-probs
    native: bool  # whether the fused C kernels ran the passes


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce(t: torch.Tensor, op=None, group=None) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM, group=group)
    return t


def _chunks(n: int, rows: int):
    for s in range(0, n, rows):
        yield s, min(s + rows, n)


class _Solver:
    """State of one solve (potentials, kernel cache, buffers) for this rank's rows."""

    def __init__(self, log_p, cfg, marginals, group):
        if log_p.dim() != 2 or not log_p.is_floating_point():
            raise ValueError(f"log_p must be a floating (N, K) tensor, got {tuple(log_p.shape)} {log_p.dtype}")
        self.x, self.cfg, self.group, self.lam = log_p, cfg, group, float(cfg.lambda_)
        self.n, self.k = log_p.shape
        self.dev = log_p.device
        self.rows = cfg.chunk_rows or max(1, (1 << 20) // self.k)
        f32 = dict(device=self.dev, dtype=torch.float32)
        f64 = dict(device=self.dev, dtype=torch.float64)
        self.ws = torch.empty(min(self.rows, self.n), self.k, **f32)  # chunk workspace
        # Pre-pass: row maxima (to centre lambda*log_p before float32 rounding) and,
        # for the gauss/zipf priors, the current (argmax) cluster sizes.
        need_sizes = marginals is None and cfg.marginals != "uniform"
        self.lmax = torch.empty(self.n, **f32)
        counts = torch.zeros(self.k + 1, **f64)
        for s, e in _chunks(self.n, self.rows):
            ws = self.ws[: e - s]
            ws.copy_(log_p[s:e])
            torch.amax(ws, 1, out=self.lmax[s:e])
            if need_sizes:
                counts[: self.k] += torch.bincount(ws.argmax(1), minlength=self.k)
        counts[self.k] = self.n
        _all_reduce(counts, group=group)
        self.n_global = int(counts[self.k].item())
        if marginals is None:
            marginals = target_marginals(cfg.marginals, self.k, counts[: self.k].cpu(),
                                         cfg.zipf_exponent, cfg.seed)
        a = marginals.to(**f64)
        if a.shape != (self.k,) or not bool((a > 0).all()):
            raise ValueError("marginals must be a positive K-vector")
        self.a = a / a.sum()
        self.log_a, self.log_b = self.a.log(), -math.log(self.n_global)
        self.cached = self.n * self.k * 4 <= cfg.cache_gb * 1e9
        self.kern = torch.empty(self.n, self.k, **f32) if self.cached else None
        self.native = cfg.native and self.n > 0 and sinkhorn_cpu.supports(log_p)
        self.threads = cfg.threads or torch.get_num_threads()
        self.row_off = torch.empty(self.n, **f64)  # kernel row stabiliser (absolute)
        self.s = torch.empty(self.n, **f32)  # kernel row . rho
        self.log_r = torch.zeros(self.k, **f64)  # POT starts from uniform u as well
        self.g = None  # potential absorbed into the kernel; None = kernel not built
        self.builds = 0

    def _torch_pass(self, absorb, rho):
        """Reference path (GPU, float64/bfloat16 input, no compiler): two mat-vecs per chunk."""
        col = torch.zeros(self.k, device=self.dev, dtype=torch.float64)
        inv, tmp = torch.empty_like(self.s[: self.rows]), torch.empty_like(rho)
        for s, e in _chunks(self.n, self.rows):
            kern = self.kern[s:e] if self.cached else self.ws[: e - s]
            if absorb:
                if self.x.dtype == torch.float64:  # subtract before rounding to float32
                    torch.sub(self.x[s:e], self.lmax[s:e, None], out=kern)
                else:  # exact copy, then a fast same-dtype subtraction
                    kern.copy_(self.x[s:e]).sub_(self.lmax[s:e, None])
                torch.add(self.g_centred, kern, alpha=self.lam, out=kern)
                rmax = kern.amax(1)
                kern.sub_(rmax[:, None]).clamp_(min=_FLOOR).exp_()
                self.row_off[s:e] = self.lam * self.lmax[s:e].double() + self.g_ref + rmax.double()
            torch.mv(kern, rho, out=self.s[s:e])
            torch.reciprocal(self.s[s:e], out=inv[: e - s])
            torch.mv(kern.t(), inv[: e - s], out=tmp)
            col += tmp
        return col

    def fused_pass(self, absorb):
        """One read of the kernel: row sums s = kernel . rho, and column sums kernel^T (1/s).

        Returns those column sums (float64) and sum(1/s); the new row potentials are
        log b - (row_off + shift + log s).
        """
        if absorb:
            # Centre on the median so the common clusters' offsets are small (exact in
            # float32); the float32 rounding of the offsets is folded back via rho.
            self.builds += 1
            self.g_ref = float(self.log_r.median())
            self.g_centred = (self.log_r - self.g_ref).float()
            self.g = self.g_centred.double() + self.g_ref
        d = self.log_r - self.g
        self.shift = float(d.max())
        rho = (d - self.shift).exp().float()
        if not self.native:
            col = self._torch_pass(absorb, rho)
        elif absorb:
            rmax = torch.empty(self.n, dtype=torch.float32)
            col = sinkhorn_cpu.build_pass(self.x, self.lmax, self.lam, self.g_centred, rho, self.kern,
                                          rmax, self.s, self.threads)
            self.row_off = self.lam * self.lmax.double() + self.g_ref + rmax.double()
        else:
            col = sinkhorn_cpu.cached_pass(self.kern, rho, self.s, self.threads)
        return col, self.s.double().reciprocal_().sum()

    def exact_columns(self, bad, log_c):
        """log-sum-exp over all ranks' samples of lambda*log_p[:, bad] + log_c, in float64."""
        lse = torch.full((bad.numel(),), -math.inf, device=self.dev, dtype=torch.float64)
        for s, e in _chunks(self.n, self.rows):
            z = (self.x[s:e].index_select(1, bad).double() * self.lam).add_(log_c[s:e, None])
            lse = torch.logaddexp(lse, torch.logsumexp(z, 0))
        mx = _all_reduce(lse.clone(), dist.ReduceOp.MAX, self.group)
        mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        return mx + _all_reduce((lse - mx).exp(), group=self.group).log()

    def solve(self):
        """POT's loop: row update, column update, error check after iterations 1, 1+k, ...

        The check of iteration t needs the row sums with r_t, which the next pass computes
        anyway, so it costs nothing; on success that pass's updates are discarded.
        """
        cfg, k = self.cfg, self.k
        log_c = torch.zeros(self.n, device=self.dev, dtype=torch.float64)
        err, converged, done, force_absorb = math.nan, False, 0, True
        for it in range(cfg.n_iters):
            if not force_absorb and self.cached:
                d = self.log_r - self.g
                force_absorb = float(d.max() - d.min()) > _ABSORB_RANGE
            col, sum_inv = self.fused_pass(force_absorb or not self.cached)
            lse_row = self.row_off + self.shift + self.s.double().log()
            check = it > 0 and (it - 1) % cfg.check_every == 0
            errsq = ((self.n_global * (log_c + lse_row).exp() - 1) ** 2).sum() if check else sum_inv * 0
            red = _all_reduce(torch.cat([col, torch.stack([sum_inv, errsq])]), group=self.group)
            col, sum_inv, errsq = red[:k], float(red[k]), float(red[k + 1])
            if check:
                err = math.sqrt(errsq / self.n_global)
                if err < cfg.tol:
                    converged = True
                    break
            log_c = self.log_b - lse_row
            # Column update: log r = log a - log(column mass with the new rows). Columns
            # whose float32 sum may be dominated by floored entries are redone exactly.
            new_r = self.g + self.shift + self.log_a - self.log_b - col.log()
            bad = (col < 1e8 * math.exp(_FLOOR) * sum_inv).nonzero().flatten()
            if bad.numel():
                new_r[bad] = self.log_a[bad] - self.exact_columns(bad, log_c)
            self.log_r, force_absorb, done = new_r, bad.numel() > 0, it + 1
        return log_c, err, converged, done

    def labels(self, return_soft):
        """argmax_k of lambda*log_p + log_r in float64, so near-ties resolve as in POT."""
        labels = torch.empty(self.n, device=self.dev, dtype=torch.long)
        soft = torch.empty(self.n, self.k, device=self.dev, dtype=torch.float32) if return_soft else None
        z_buf = torch.empty(min(self.rows, self.n), self.k, device=self.dev, dtype=torch.float64)
        for s, e in _chunks(self.n, self.rows):
            z = z_buf[: e - s]
            z.copy_(self.x[s:e])
            torch.add(self.log_r, z, alpha=self.lam, out=z)
            torch.argmax(z, 1, out=labels[s:e])
            if soft is not None:
                soft[s:e] = torch.softmax(z, 1)
        return labels, soft


def sinkhorn_knopp(log_p: torch.Tensor, cfg: SinkhornConfig | None = None, *,
                   marginals: torch.Tensor | None = None, return_soft: bool = False,
                   group=None) -> SinkhornResult:
    """Self-labels for this rank's rows of ``log_p`` (N_local x K log-probabilities).

    Collective when torch.distributed is initialised: every rank of ``group`` must call
    it with its own rows (N is the sum over ranks) and gets its own rows' labels. For
    SeLaVi's cross-modal labels pass 0.5 * (log p_video + log p_audio). ``log_p`` may be
    float16/bfloat16/float32/float64 and is never modified or copied whole. ``marginals``
    (a positive K-vector) overrides ``cfg.marginals``.
    """
    cfg = cfg or SinkhornConfig()
    solver = _Solver(log_p, cfg, marginals, group)
    # The native passes bring their own threads; the remaining torch ops per iteration
    # are N-vectors, for which OpenMP hand-offs cost more than they save (and, on a busy
    # machine, each one waits for a time slice). Restored afterwards.
    omp_threads = torch.get_num_threads()
    if solver.native:
        torch.set_num_threads(1)
    try:
        log_c, err, converged, done = solver.solve()
    finally:
        torch.set_num_threads(omp_threads)
    solver.kern = solver.ws = None  # free the cache before the label pass allocates
    labels, soft = solver.labels(return_soft)
    return SinkhornResult(labels=labels, soft=soft, log_r=solver.log_r, log_c=log_c,
                          marginals=solver.a, n_iters=done, err=err, converged=converged,
                          cached=solver.cached, kernel_builds=solver.builds, native=solver.native)
