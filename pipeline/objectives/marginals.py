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
# Orders of the gauss target sizes: ``by_size`` (``assign_by_size``) or ``official``
# (``official_gauss_step``: SeLaVi's public code as it runs).
MARGINAL_ORDERS = ("by_size", "official")


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


def official_gauss_draws(k: int, heads: int, n: int, seed: int, std: float = 0.1) -> torch.Tensor:
    """[heads, K] float64: one draw per head, (N(0,1) * std + 1) * N / K, in that order of
    operations, the heads drawn one after the other from one generator seeded with ``seed``.

    The official SeLaVi code draws these at its first re-labelling from the global RNG
    (one (K, 1) draw per head) and keeps them for the whole run; N is the dataset size.
    No clipping: a non-positive size needs a 10-sigma draw at std 0.1 and is refused.
    """
    gen = torch.Generator().manual_seed(seed)
    draws = torch.stack([((torch.randn((k, 1), generator=gen, dtype=torch.float64) * std + 1) * n / k)[:, 0]
                         for _ in range(heads)])
    if not bool((draws > 0).all()):
        raise ValueError(f"gauss marginals: a non-positive draw (std {std}, seed {seed}); use another seed")
    return draws


def official_gauss_step(draw: torch.Tensor, mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One re-labelling of one head as the official code runs it: returns (the head's new
    draw, the target marginals).

    The official code means to sort the sizes to the clusters' current soft masses, but its
    sort runs along the size-1 axis of a (K, 1) tensor and returns the sizes unchanged, so
    what remains is a scatter: new[argsort(mass)[i]] = draw[i]. It writes into its stored
    draw, so the permutations compound from one re-labelling to the next (effectively a
    random order, not largest-to-largest). The target of cluster k is proportional to
    1 / new[k] (it passes the sizes through ``r = 1/dist; r /= r.sum()``).
    ``mass``: the clusters' summed probabilities (official: column sums of p_video * p_audio).
    """
    draw = draw.to(torch.float64)
    if draw.shape != mass.shape or draw.dim() != 1:
        raise ValueError(f"draw {tuple(draw.shape)} and mass {tuple(mass.shape)} must be equal K-vectors")
    order = torch.argsort(mass.detach().to("cpu", torch.float64), stable=True)
    new = draw.clone()
    new[order] = draw.clone()
    target = 1.0 / new
    target /= target.sum()
    return new, target
