"""Per-modality results: each of video, audio and joint (audio-visual) beside the same
network at random initialisation, and a flag on every metric where training did not
clearly beat random init.

Why: on a corpus an untrained network already separates (the easy synthetic sounds gave
random-init audio kNN 0.99), a high trained number says nothing about learning. Showing
every modality next to its baseline, and saying so in words when the gap is small, keeps
such a number from being read as a result. ``eval.json`` carries the table
(``per_modality``, ``no_better_than_random``); the report and the demo print it.
"""
from __future__ import annotations

# (modality, eval.json key, label); the keys are fractions in [0, 1] unless listed in PERCENT
ROWS = (
    ("video", "knn_top1", "kNN top-1 (k=20)"),
    ("video", "linear_top1", "linear probe top-1"),
    ("audio", "knn_top1_k20_audio", "kNN top-1 (k=20)"),
    ("audio", "linear_top1_audio", "linear probe top-1"),
    ("joint", "knn_top1_av", "kNN top-1 (video+audio features, k=20)"),
    ("joint", "r_at_1_a2v", "R@1 audio->video (%)"),
    ("joint", "r_at_1_v2a", "R@1 video->audio (%)"),
)
PERCENT = {"r_at_1_a2v", "r_at_1_v2a"}
MARGIN = 0.05       # "clearly above": 5 points of the metric's full scale over random init,
RATIO, MIN_GAP = 2.0, 0.02  # or twice the random-init value and 2 points over it (R@1 near 1 %)
FLAG = "no better than random init"


def clearly_above(key: str, trained: float, random_init: float) -> bool:
    """Trained beats random init by 5 points of full scale, or doubles it by 2 points or
    more (R@1 among 96 clips is 1 % at chance: 4 % is a clear gain, 5 points is not needed)."""
    scale = 100.0 if key in PERCENT else 1.0
    gap = trained - random_init
    return gap >= MARGIN * scale or (trained >= RATIO * random_init and gap >= MIN_GAP * scale)


def per_modality(ev: dict) -> dict:
    """{modality: {key: {label, trained, random_init, clearly_above}}} for the metrics
    present in ``ev`` (an eval.json dict with its ``random_init`` block)."""
    rnd = ev.get("random_init", {})
    out: dict = {}
    for mod, key, label in ROWS:
        if key not in ev:
            continue
        row = {"label": label, "trained": ev[key]}
        if key in rnd:
            row["random_init"] = rnd[key]
            row["clearly_above"] = clearly_above(key, ev[key], rnd[key])
        out.setdefault(mod, {})[key] = row
    return out


def flagged(table: dict) -> list[str]:
    """``modality/key`` of every metric not clearly above its random-init value."""
    return [f"{mod}/{key}" for mod, rows in table.items() for key, row in rows.items()
            if row.get("clearly_above") is False]


def text_table(table: dict) -> str:
    """The table as aligned plain text (the demo prints it)."""
    lines = [f"{'modality':<8} {'metric':<40} {'trained':>8} {'random':>8}"]
    for mod, rows in table.items():
        for row in rows.values():
            rnd = row.get("random_init")
            note = "" if row.get("clearly_above", True) else f"  <- {FLAG}"
            lines.append(f"{mod:<8} {row['label']:<40} {row['trained']:>8.3f} "
                         f"{'' if rnd is None else f'{rnd:8.3f}':>8}{note}")
    return "\n".join(lines)
