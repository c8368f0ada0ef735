"""Linear probe: multinomial logistic regression on frozen, standardised features,
fitted by L-BFGS whose every evaluation reads the (memory-mapped) rows in chunks, so its
memory does not grow with the training set.

Written here rather than taken from scikit-learn because its solvers need the whole
matrix in memory. The weight decay is chosen on a held-out fifth of the training rows
(stratified by label, grouped by video so clips of one video never straddle it), then
the probe is refitted on every training row; the test rows are scored once, never used
to choose anything (CoCLR's protocol: hyper-parameters never chosen on the test split).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)  # CoCLR's range for its linear probe
CHUNK = 8192


def _rows(x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x[np.sort(idx)] if len(idx) else x[:0], np.float32))


def moments(x: np.ndarray, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the given rows, accumulated in chunks (float64)."""
    s = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    rows = np.sort(rows)
    for i in range(0, len(rows), CHUNK):
        part = np.asarray(x[rows[i:i + CHUNK]], np.float64)
        s = s[0] + part.sum(0), s[1] + (part ** 2).sum(0)
    mean = s[0] / max(len(rows), 1)
    std = np.sqrt(np.maximum(s[1] / max(len(rows), 1) - mean ** 2, 0.0))
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=torch.float32)


def fit(x: np.ndarray, y: np.ndarray, rows: np.ndarray, n_cls: int, weight_decay: float,
        max_iter: int = 100):
    """Softmax regression on standardised ``x[rows]``: L-BFGS on the mean cross-entropy
    plus weight_decay/2 * |W|^2, each evaluation streaming the rows in chunks (memory
    O(chunk x D) whatever N; the optimum is the one full-batch solvers find). Returns
    (linear layer, mean, std)."""
    rows = np.sort(rows)
    mean, std = moments(x, rows)
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
    layer = torch.nn.Linear(x.shape[1], n_cls)
    torch.nn.init.zeros_(layer.weight)
    torch.nn.init.zeros_(layer.bias)
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    cached = [((_rows(x, c) - mean) / std, labels[c]) for c in chunks] if len(chunks) == 1 else None
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=max_iter, history_size=10,
                            tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = 0.5 * weight_decay * layer.weight.pow(2).sum()
        total.backward()
        total = total.detach()
        for i, c in enumerate(chunks):
            xb, yb = cached[0] if cached else ((_rows(x, c) - mean) / std, labels[c])
            part = F.cross_entropy(layer(xb), yb, reduction="sum") / len(rows)
            part.backward()
            total = total + part.detach()
        return total

    opt.step(closure)
    return layer, mean, std


@torch.no_grad()
def predict(model, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    layer, mean, std = model
    rows = np.arange(len(x)) if rows is None else np.sort(rows)
    out = [layer((_rows(x, rows[i:i + CHUNK]) - mean) / std).argmax(1).numpy()
           for i in range(0, len(rows), CHUNK)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def held_out(y: np.ndarray, groups: np.ndarray | None, fraction: float = 0.2,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows): about ``fraction`` held out, stratified by label when
    every class has enough groups, grouped (by video) always."""
    y = np.asarray(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    folds = max(2, round(1 / fraction))
    try:
        split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, groups)
        fit_rows, val_rows = next(split)
    except ValueError:  # a class with fewer groups than folds: plain grouped split
        fit_rows, val_rows = next(GroupShuffleSplit(1, test_size=fraction, random_state=seed)
                                  .split(np.zeros(len(y)), y, groups))
    return np.sort(fit_rows), np.sort(val_rows)


def linear_probe(train_x, train_y, test_x, test_y, train_groups: np.ndarray | None = None,
                 weight_decays=WEIGHT_DECAYS, seed: int = 0) -> dict:
    """Top-1 on the test rows of the probe whose weight decay scored best on a held-out
    part of the training rows; also the chosen decay and its validation top-1."""
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    fit_rows, val_rows = held_out(train_y, train_groups, seed=seed)
    scores = {}
    for wd in weight_decays:
        model = fit(train_x, train_y, fit_rows, n_cls, wd)
        scores[wd] = float((predict(model, train_x, val_rows) == train_y[val_rows]).mean())
    best = max(weight_decays, key=lambda wd: (scores[wd], wd))  # ties: the stronger decay
    model = fit(train_x, train_y, np.arange(len(train_y)), n_cls, best)
    top1 = float((predict(model, test_x) == test_y).mean())
    return {"top1": top1, "weight_decay": best, "val_top1": scores[best], "val_rows": int(len(val_rows))}
