"""Run the Sinkhorn and loader paths in a fresh process and save what they produce.

``python compiler_free_probe.py SHARDS OUT.pt``: the test runs it with and without C
compilers on PATH and compares the two files.
"""
import logging
import sys

import torch

from pipeline.config import load_config
from pipeline.loader.loader import ClipLoader, LoaderConfig
from pipeline.objectives.sinkhorn import SinkhornConfig, sinkhorn_knopp


def log_probs(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, generator=g, dtype=torch.float64) * 2, 1)


def main():
    shards, out = sys.argv[1], sys.argv[2]
    result = {}
    heads = torch.stack([log_probs(3000, 40, s) for s in (1, 2)], 1).half()  # SeLaVi's layout
    problems = {"half_strided_streamed": (heads[:, 1], 0.0), "float_cached": (log_probs(2000, 30, 3).float(), 4.0)}
    for name, (log_p, cache_gb) in problems.items():
        res = sinkhorn_knopp(log_p, SinkhornConfig(n_iters=30, tol=0.0, cache_gb=cache_gb, threads=2))
        assert res.native, name
        result[f"{name}.labels"], result[f"{name}.log_r"] = res.labels, res.log_r
    loader = ClipLoader(load_config(LoaderConfig, [], [
        f"shards={shards}", "batch_size=4", "workers=0", "clip.frames=4", "video.size=32", "seed=3"]))
    batch = next(iter(loader))
    # clones: a batch's video and waveforms are views of one shared block, which torch.save refuses
    result.update({f"batch.{k}": v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)})
    torch.save(result, out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    main()
