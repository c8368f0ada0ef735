"""Make the Gaussian-marginals fixture from the official SeLaVi solver.

    python tests/parity/make_fixtures/gauss_marginals.py --selavi /path/to/selavi \
        --out tests/parity/fixtures

Runs ``optimize_L_sk_gpu`` of facebookresearch/selavi (33d2b2d, ``src/sk_utils.py``)
unmodified on CPU: its ``torch`` is handed a stand-in that drops the ``device=`` argument,
``Tensor.cuda`` returns the tensor, and the one helper it imports from the repository's
``utils`` (a SLURM requeue, never called) is stubbed. Its arguments are the public
script's: distribution gauss, gauss_sd 0.1, diff_dist_per_head True, diff_dist_every
False, lambda 20. The problem is ``problem(seed)`` (the test repeats it): 3 heads, each
re-labelled twice (head order 0,1,2,0,1,2), on the global RNG seeded with SEED. For every
call the target marginals ``r`` and the draw it used are read from the function's frame
when it returns (``sys.setprofile``), with the labels it returns.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

N, K, HEADS, CALLS, SEED = 600, 30, 3, 2, 5


def problem(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Video and audio softmaxes [HEADS, CALLS, N, K] (float64) of a clustered problem."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(K, 16, generator=gen, dtype=torch.float64)
    members = torch.randint(0, K, (N,), generator=gen)
    out = []
    for _ in range(2):
        proj = torch.randn(HEADS, CALLS, 16, K, generator=gen, dtype=torch.float64)
        x = centres[members] + 0.7 * torch.randn(HEADS, CALLS, N, 16, generator=gen, dtype=torch.float64)
        out.append((x @ proj).softmax(-1))
    return out[0], out[1]


class _CPUTorch(types.ModuleType):
    """torch without devices: every ``device=`` argument is dropped."""

    def __getattr__(self, name):
        f = getattr(torch, name)
        if callable(f) and not isinstance(f, type):
            def call(*a, **k):
                k.pop("device", None)
                return f(*a, **k)
            return call
        return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--selavi", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "fixtures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.modules["utils"] = types.SimpleNamespace(trigger_job_requeue=None)
    spec = importlib.util.spec_from_file_location("sk_utils", args.selavi / "src" / "sk_utils.py")
    sk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sk)
    sk.torch = _CPUTorch("torch")
    torch.Tensor.cuda = lambda self, *a, **k: self

    opt = argparse.Namespace(distribution="gauss", dist=None, diff_dist_every=False, diff_dist_per_head=True,
                             headcount=HEADS, gauss_sd=0.1, lamb=20, rank=0)
    log = logging.getLogger("official")
    pv, pa = problem(SEED)
    torch.manual_seed(SEED)
    seen: dict[str, torch.Tensor] = {}

    def grab(frame, event, arg):
        if event == "return" and frame.f_code.co_name == "optimize_L_sk_gpu":
            seen["r"] = frame.f_locals["r"].clone()
            seen["dist"] = frame.f_locals["_K_dist"].clone()

    tensors, calls = {}, []
    for call in range(CALLS):
        for head in range(HEADS):
            ps = pv[head, call] * pa[head, call]  # as its caller: product of the softmaxes
            sys.setprofile(grab)
            try:
                _, labels = sk.optimize_L_sk_gpu(opt, ps.clone(), hc=head, logger=log)
            finally:
                sys.setprofile(None)
            tensors[f"target_h{head}_c{call}"] = seen["r"][:, 0].contiguous()
            tensors[f"draw_h{head}_c{call}"] = seen["dist"][:, 0].contiguous()
            tensors[f"labels_h{head}_c{call}"] = labels.to(torch.int32)
            calls.append([head, call])
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "gauss_marginals.safetensors"))
    (args.out / "gauss_marginals.json").write_text(json.dumps({
        "official": "facebookresearch/selavi 33d2b2d src/sk_utils.py optimize_L_sk_gpu",
        "n": N, "k": K, "heads": HEADS, "calls": calls, "seed": SEED, "gauss_sd": 0.1, "lambda": 20}, indent=1))


if __name__ == "__main__":
    main()
