"""Cosine nearest neighbours in bounded memory: queries and candidates are read in
chunks of rows (memory-mapped features stay on disk), each query keeps a running top-k,
so memory is O(chunk x chunk + queries x k) whatever the corpus size.

Rows can carry group ids (the sample's source video): a candidate of the query's own
group is never its neighbour, so scoring a set against itself (no held-out split) is a
leave-one-video-out score instead of every clip finding itself.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 4096


def unit_rows(x: np.ndarray, lo: int, hi: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Rows lo:hi of a (memory-mapped) array or a tensor as L2-normalised float32."""
    rows = x[lo:hi]
    rows = rows.float() if isinstance(rows, torch.Tensor) else torch.from_numpy(np.array(rows, np.float32))
    return F.normalize(rows.to(device), dim=1)


def topk_cosine(queries: np.ndarray, candidates: np.ndarray, k: int,
                query_groups: np.ndarray | None = None, candidate_groups: np.ndarray | None = None,
                chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarities [Nq, k], candidate indices [Nq, k]) of each query's k most
    cosine-similar candidates, best first; with groups, same-group candidates are left
    out (their slots hold -inf / -1 when fewer than k remain)."""
    nq, nc = len(queries), len(candidates)
    k = min(k, nc)
    out_s = torch.empty(nq, k)
    out_i = torch.empty(nq, k, dtype=torch.long)
    masked = query_groups is not None and candidate_groups is not None
    for qs in range(0, nq, chunk):
        q = unit_rows(queries, qs, qs + chunk)
        best_s = torch.full((len(q), k), float("-inf"))
        best_i = torch.full((len(q), k), -1, dtype=torch.long)
        for cs in range(0, nc, chunk):
            sim = q @ unit_rows(candidates, cs, cs + chunk).T
            if masked:
                same = (torch.as_tensor(query_groups[qs:qs + chunk])[:, None]
                        == torch.as_tensor(candidate_groups[cs:cs + chunk])[None, :])
                sim = sim.masked_fill(same, float("-inf"))
            s, i = sim.topk(min(k, sim.shape[1]), dim=1)
            both_s, both_i = torch.cat([best_s, s], 1), torch.cat([best_i, i + cs], 1)
            best_s, pos = both_s.topk(k, dim=1)
            best_i = both_i.gather(1, pos)
        best_i[best_s == float("-inf")] = -1
        out_s[qs:qs + len(q)], out_i[qs:qs + len(q)] = best_s, best_i
    return out_s, out_i


def group_codes(*id_arrays: np.ndarray) -> list[np.ndarray]:
    """Integer codes of string ids, shared across the arrays (equal id -> equal code)."""
    table: dict[str, int] = {}
    return [np.asarray([table.setdefault(str(v), len(table)) for v in ids], np.int64) for ids in id_arrays]
