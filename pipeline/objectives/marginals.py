"""Target cluster marginals for Sinkhorn self-labelling (SeLa / SeLaVi).

Equipartition (uniform) is SeLa's prior. SeLaVi relaxes it with a Gaussian prior on
cluster sizes because real datasets are not balanced; a Zipf prior (named but never
implemented in SeLaVi's public code) models long-tailed data. Non-uniform priors say
nothing about *which* cluster should be big, so the target sizes are handed out in the
order of the clusters' current sizes: the currently largest cluster gets the largest
target, which moves the labels as little as possible.

Every constructor returns a float64 K-vector summing to 1 (POT's ``a``). Randomness
comes from an explicit seed so that every rank builds the same vector without
communication.
"""

from __future__ import annotations

import torch

KINDS = ("uniform", "gauss", "zipf")


def uniform_marginals(k: int) -> torch.Tensor:
    """Equipartition: every cluster receives N/K samples (SeLa)."""
    return torch.full((k,), 1.0 / k, dtype=torch.float64)


def assign_by_size(sizes: torch.Tensor, current_sizes: torch.Tensor | None) -> torch.Tensor:
    """Give the i-th largest target size to the i-th largest current cluster.

    Ties in ``current_sizes`` are broken by cluster index (stable sort) so that all
    ranks agree. Without current sizes the targets keep their given order.
    """
    target = torch.sort(sizes.to(torch.float64), descending=True).values
    if current_sizes is None:
        return target / target.sum()
    if current_sizes.numel() != sizes.numel():
        raise ValueError(f"current_sizes has {current_sizes.numel()} entries, expected {sizes.numel()}")
    order = torch.argsort(current_sizes.detach().to("cpu", torch.float64), descending=True, stable=True)
    out = torch.empty_like(target)
    out[order] = target
    return out / out.sum()


def gauss_marginals(k: int, current_sizes: torch.Tensor | None = None, seed: int = 0,
                    std: float = 0.1) -> torch.Tensor:
    """SeLaVi's prior: sizes (N(0,1) * std + 1) * N/K, sorted to match current sizes.

    Draws are clipped at 1e-3 of the mean size so that a (>= 10 sigma) negative draw
    cannot produce an empty or negative cluster.
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randn(k, generator=gen, dtype=torch.float64) * std + 1.0
    return assign_by_size(sizes.clamp_min(1e-3), current_sizes)


def zipf_marginals(k: int, exponent: float = 1.0,
                   current_sizes: torch.Tensor | None = None) -> torch.Tensor:
    """Long-tailed prior: size of the r-th largest cluster proportional to r^-exponent."""
    if exponent < 0:
        raise ValueError(f"zipf exponent must be >= 0, got {exponent}")
    ranks = torch.arange(1, k + 1, dtype=torch.float64)
    return assign_by_size(ranks.pow(-exponent), current_sizes)


def target_marginals(kind: str, k: int, current_sizes: torch.Tensor | None = None,
                     zipf_exponent: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Dispatch on ``kind`` ("uniform" | "gauss" | "zipf"), as named in configs."""
    if kind == "uniform":
        return uniform_marginals(k)
    if kind == "gauss":
        return gauss_marginals(k, current_sizes, seed=seed)
    if kind == "zipf":
        return zipf_marginals(k, zipf_exponent, current_sizes)
    raise ValueError(f"unknown marginals {kind!r}; expected one of {KINDS}")
