"""Gather embeddings from every rank with gradients, for losses with global negatives.

``gather_with_grad`` concatenates the ranks' tensors along dim 0; its backward sums the
incoming gradients over ranks and hands each rank the slice of its own rows (torch's
autograd ``all_gather``: reduce-scatter on NCCL, all-to-all on gloo). Ranks may hold
different numbers of rows (a last, smaller batch): rows are padded to the largest count
for the collective and the padding is cut off again.

Gradient scaling (what the engine must do): a loss built on the gathered tensor on every
rank sends each rank's rows the gradient of the SUM over ranks of the per-rank losses.
The objectives here therefore return per-rank losses that sum to ``world_size`` x the
global loss, and the engine must AVERAGE parameter gradients over ranks (DeepSpeed and
DDP do so by default); the result equals one process on the concatenated batch.
Without a process group (or world size 1) everything is a no-op.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_sizes(n: int, device: torch.device) -> list[int]:
    """Row counts of all ranks (one tiny all_gather; [n] when not distributed)."""
    _, size = world()
    if size == 1:
        return [n]
    mine = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(mine) for _ in range(size)]
    dist.all_gather(out, mine)
    return [int(t.item()) for t in out]


def gather_with_grad(x: torch.Tensor, sizes: list[int] | None = None) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` [n, ...] over ranks (autograd-aware); return it and this rank's row offset.

    ``sizes`` (from ``gather_sizes``) may be passed to save a collective when the caller
    gathers several tensors with the same row counts.
    """
    rank, size = world()
    if size == 1:
        return x, 0
    sizes = sizes if sizes is not None else gather_sizes(x.shape[0], x.device)
    if sizes[rank] != x.shape[0]:
        raise ValueError(f"gather_with_grad: this rank has {x.shape[0]} rows but sizes say {sizes[rank]}")
    top = max(sizes)
    if x.shape[0] < top:
        x = torch.cat([x, x.new_zeros(top - x.shape[0], *x.shape[1:])])
    parts = dist_fn.all_gather(x)
    full = torch.cat([p[:n] for p, n in zip(parts, sizes)])
    return full, sum(sizes[:rank])


@torch.no_grad()
def gather_detached(x: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    """Every rank's ``x`` [n_r, ...] as a list in rank order (no autograd), and this rank's index.

    For objectives whose keys and negatives carry no gradient (the official GDT code's
    stop-gradient): a plain ``all_gather`` suffices, and a rank's own entry is ``x`` itself
    (detached). Uneven row counts are padded for the collective and cut again.
    """
    rank, size = world()
    if size == 1:
        return [x.detach()], 0
    sizes = gather_sizes(x.shape[0], x.device)
    top = max(sizes)
    x = x.detach().contiguous()
    padded = torch.cat([x, x.new_zeros(top - x.shape[0], *x.shape[1:])]) if x.shape[0] < top else x
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return [p[:n] for p, n in zip(parts, sizes)], rank
