"""Figures for the report, rendered to PNG bytes with matplotlib (no display needed)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


# names (classes, run folders) are text: "$...$" in one must not be parsed as mathtext
PLAIN_TEXT = matplotlib.rc_context({"text.parse_math": False})


@PLAIN_TEXT
def curves(runs: dict[str, list[dict]], keys=("loss", "lr", "clips_per_s", "data_wait_frac")) -> bytes:
    """One panel per metric, one line per run, against the optimizer step."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.4), layout="constrained")
    for ax, key in zip(np.atleast_1d(axes), keys):
        for name, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if key in r and isinstance(r[key], (int, float))]
            if pts:
                ax.plot(*zip(*pts), label=name, marker="." if len(pts) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    return _png(fig)


@PLAIN_TEXT
def projection(emb: dict[str, np.ndarray], labels: np.ndarray, names: list[str], seed: int = 0) -> bytes:
    """2-D t-SNE of each embedding (video, audio), points coloured by class."""
    from sklearn.manifold import TSNE
    fig, axes = plt.subplots(1, len(emb), figsize=(5 * len(emb), 4.4))
    cmap = plt.get_cmap("tab20")
    for ax, (title, x) in zip(np.atleast_1d(axes), emb.items()):
        perplexity = max(2.0, min(30.0, (len(x) - 1) / 3))
        xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        for c in np.unique(labels):
            m = labels == c
            name = names[c] if 0 <= c < len(names) else str(c)
            ax.scatter(xy[m, 0], xy[m, 1], s=12, color=cmap(int(c) % 20), label=name)
        ax.set_title(f"{title} embeddings (t-SNE)")
        ax.set_xticks([])
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return _png(fig)
