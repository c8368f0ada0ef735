"""GDT's objective as the authors' public code computes it: a weighted sum of pairwise terms.

The public code (facebookresearch/GDT, ``main_gdt.py`` hypotheses 1-9) does not build one
cross-entropy over a positive mask (``gdt.form=joint``); it adds up *pairwise* terms, each
over two views A, B of a sample, of one of three kinds:
- ``base``: query view X's positive is the other modality's same view X;
- ``variant``: the same positive, and the other view of the pair is a hard negative;
- ``invariant``: query view A's positive is the other modality's view B (and vice versa).
A term is the mean of four InfoNCE losses (video and audio queries of views A and B); the
hypothesis averages its terms with equal weights (hypothesis 8 = reversal variant, shift
invariant: 0.2 x (shift base + 2 reversal-variant terms + 2 shift-invariant terms)). Keys
and negatives carry no gradient: only the queries are back-propagated.

Two forms of the same terms (``gdt.form``):
- ``official_exact`` reproduces the public code's value, split over GPUs included: a
  query's denominator holds its own rank's samples in the positive view only (plus, for a
  variant term, their hard-negative view), but the other ranks' samples in every view
  that the code's list of gathered blocks holds by then. That list is extended in place
  by each term (``list.extend`` on the gathered blocks), so later terms see blocks of
  earlier ones, some twice (hypothesis 8: 20 rows for 16 unique at 2 ranks of 4). The
  value therefore depends on the ranks; a run uses its real ranks, a single process may
  simulate ``gdt.simulate_ranks`` of them (auditing). Each rank returns its local mean,
  as the public code does; the mean over ranks is the loss whose gradient DDP / DeepSpeed
  apply (the public code assumes equal batches on all ranks).
- ``official`` is the split-independent form of the same terms and weights: every other
  sample of the global batch contributes both views of the pair (A and B) of the other
  modality, no block twice; the own sample contributes its positive and, for a variant
  term, its hard negative. Its value is the same at any number of ranks (the public
  code's value when every sample sits on its own GPU, without the repeated and carried
  over blocks). Scaling contract as in ``nce.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.objectives.gather import gather_detached, world

MODS = ("video", "audio")


@dataclass(frozen=True)
class Term:
    weight: float
    kind: str  # base | variant | invariant
    a: int  # view index in the objective's layout (k = shift * R + reversal)
    b: int | None  # partner view; None = the single-view base case (hypothesis 1)


def hypothesis(reversal: str, shift: str) -> int:
    """The public code's hypothesis number for a (reversal, shift) setting."""
    table = {("off", "off"): 1, ("variant", "off"): 2, ("invariant", "off"): 3, ("off", "variant"): 4,
             ("off", "invariant"): 5, ("variant", "variant"): 6, ("invariant", "variant"): 7,
             ("variant", "invariant"): 8, ("invariant", "invariant"): 9}
    return table[(reversal, shift)]


def terms(reversal: str, shift: str) -> list[Term]:
    """The hypothesis's terms in the order the public code evaluates them (the order
    matters for ``official_exact``: each term extends the gathered blocks' lists)."""
    if reversal == "off" and shift == "off":
        return [Term(1.0, "base", 0, None)]
    if reversal == "off" or shift == "off":  # one transformation: views 0, 1
        mode = shift if reversal == "off" else reversal
        plan = [("base", 0, 1)] if mode == "invariant" else []
        plan.append((mode, 0, 1))
    else:  # both: views 0 = (s0, r0), 1 = (s0, reversed), 2 = (s1, r0), 3 = (s1, reversed)
        plan = []
        if reversal == "invariant":
            plan.append(("base", 0, 1))
        if shift == "invariant":
            plan.append(("base", 0, 2))
        plan += [(reversal, 0, 1), (reversal, 2, 3), (shift, 0, 2), (shift, 1, 3)]
    return [Term(1.0 / len(plan), kind, a, b) for kind, a, b in plan]


def _directions(t: Term):
    """(query view, positive view, hard-negative view or None, share) of each InfoNCE in a term."""
    if t.b is None:
        return [(t.a, t.a, None, 1.0)]
    if t.kind == "invariant":
        return [(t.a, t.b, None, 0.5), (t.b, t.a, None, 0.5)]
    hard = t.kind == "variant"
    return [(t.a, t.a, t.b if hard else None, 0.5), (t.b, t.b, t.a if hard else None, 0.5)]


def _info_nce(q, pos, neg, temperature):
    """Mean InfoNCE of queries q [n, D]: positives pos [n, D] (row i for query i; the other
    rows are negatives too), negatives neg [M, D]; and the number of correct argmaxes."""
    logits = torch.cat([q @ pos.t(), q @ neg.t()], dim=1) / temperature
    target = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().sum()


def exact_rank_loss(local: torch.Tensor, others: list[torch.Tensor], plan: list[Term], temperature):
    """The public code's loss on one rank.

    local [n, K, 2, D]: this rank's (video, audio) views, queries with gradients;
    others [n_r, K, 2, D]: the other ranks' rows in rank order (no gradient).
    Returns (loss, {"acc_v2a": ..., "acc_a2v": ...}).
    """
    keys = local.detach()
    k = local.shape[1]
    # per modality and view: the list of views whose other-rank blocks are the negatives
    blocks = {m: [[v] for v in range(k)] for m in range(2)}
    loss = local.new_zeros(())
    correct, count = [local.new_zeros(()), local.new_zeros(())], 0
    for t in plan:
        if t.b is None:
            neg_views = {m: list(blocks[m][t.a]) for m in range(2)}
        else:
            grow, add = (t.b, t.a) if t.kind == "invariant" else (t.a, t.b)
            for m in range(2):
                blocks[m][grow].extend(list(blocks[m][add]))  # in place, as the public code does
            neg_views = {m: list(blocks[m][grow]) for m in range(2)}
        for m in range(2):  # query modality m, keys of modality o
            o = 1 - m
            neg_others = [r[:, v, o] for v in neg_views[o] for r in others]
            for qv, pv, hv, share in _directions(t):
                neg = neg_others + ([keys[:, hv, o]] if hv is not None else [])
                neg = torch.cat(neg) if neg else keys.new_zeros(0, keys.shape[-1])
                term, ok = _info_nce(local[:, qv, m], keys[:, pv, o], neg, temperature)
                loss = loss + t.weight * share * 0.5 * term
                correct[m] = correct[m] + ok
        count += len(_directions(t)) * local.shape[0]
    return loss, {"acc_v2a": correct[0] / count, "acc_a2v": correct[1] / count}


def official_exact(v: torch.Tensor, a: torch.Tensor, plan: list[Term], temperature, simulate: int = 1):
    """``official_exact`` over the real ranks, or over ``simulate`` equal slices of this
    process's batch (then the mean of the simulated ranks' losses)."""
    both = torch.stack([v, a], dim=2)  # [n, K, 2, D]
    if simulate == 1:
        parts, rank = gather_detached(both)
        loss, metrics = exact_rank_loss(both, parts[:rank] + parts[rank + 1:], plan, temperature)
        metrics["global_batch"] = torch.tensor(float(sum(p.shape[0] for p in parts)))
        return loss, metrics
    if world()[1] > 1:
        raise ValueError("gdt.simulate_ranks: simulating ranks is for a single process; a distributed run "
                         "uses its real ranks (set gdt.simulate_ranks=1)")
    if both.shape[0] % simulate:
        raise ValueError(f"gdt.simulate_ranks={simulate}: the batch of {both.shape[0]} does not split evenly")
    chunks = both.chunk(simulate)
    losses, accs = [], []
    for r, mine in enumerate(chunks):
        others = [c.detach() for i, c in enumerate(chunks) if i != r]
        loss, acc = exact_rank_loss(mine, others, plan, temperature)
        losses.append(loss)
        accs.append(acc)
    metrics = {key: torch.stack([x[key] for x in accs]).mean() for key in accs[0]}
    metrics["global_batch"] = torch.tensor(float(both.shape[0]))
    return torch.stack(losses).mean(), metrics


def official(v: torch.Tensor, a: torch.Tensor, plan: list[Term], temperature):
    """The split-independent form: one process's value on the global batch at any world size."""
    both = torch.stack([v, a], dim=2)  # [n, K, 2, D]
    parts, rank = gather_detached(both)
    full = torch.cat(parts)  # [N, K, 2, D], no gradient
    n, total, ws = both.shape[0], full.shape[0], world()[1]
    offset = sum(p.shape[0] for p in parts[:rank])
    own = torch.arange(n, device=v.device) + offset
    loss = v.new_zeros(())
    correct, count = [v.new_zeros(()), v.new_zeros(())], 0
    for t in plan:
        views = [t.a] if t.b is None else [t.a, t.b]
        for m in range(2):
            o = 1 - m
            keys = full[:, views, o].reshape(total * len(views), -1)  # sample-major: row j * V + view
            for qv, pv, hv, share in _directions(t):
                logits = both[:, qv, m] @ keys.t() / temperature  # [n, N * V]
                # the own sample competes only with its positive and its hard negative
                allowed = torch.tensor([w in (pv, hv) for w in views], device=v.device)
                drop = torch.zeros(n, total, len(views), dtype=torch.bool, device=v.device)
                drop[torch.arange(n), own] = ~allowed
                logits = logits.masked_fill(drop.reshape(n, -1), float("-inf"))
                target = own * len(views) + views.index(pv)
                term = F.cross_entropy(logits, target, reduction="sum") * (ws / total)
                loss = loss + t.weight * share * 0.5 * term
                correct[m] = correct[m] + (logits.argmax(1) == target).float().sum()
        count += len(_directions(t)) * n
    return loss, {"acc_v2a": correct[0] / count, "acc_a2v": correct[1] / count,
                  "global_batch": torch.tensor(float(total))}
