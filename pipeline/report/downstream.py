"""Report sections of the downstream protocols: fine-tuning (video- and clip-level
accuracy per split, pretrained beside random init), the eval protocols' summaries, and
the warning when the evaluation was in-sample."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.report.html import esc, table

PROTOCOL_TITLES = {"linear": "Linear probe (video-level)", "retrieval": "Video retrieval (CoCLR/VCOP)",
                   "esc50": "ESC-50 (5 folds, audio)", "clustering": "Clustering (SeLaVi's protocol)"}


def in_sample_banner(ev: dict) -> str:
    if not ev.get("in_sample"):
        return ""
    return ("<p class='bad'><b>In-sample:</b> the test clips are the training clips, so every number "
            "marked (in-sample) below describes the training data, not held-out performance. "
            f"{esc(ev.get('in_sample_note', ''))}</p>")


def metric_name(key: str, name: str, ev: dict) -> str:
    return f"{name} (in-sample)" if key in ev.get("in_sample_metrics", []) else name


def finetune_section(run: Path) -> str:
    """Every ``*/finetune.json`` of the run folder: one row per split and the mean."""
    rows, notes = [], []
    for path in sorted(run.glob("*/finetune.json")):
        ft = json.loads(path.read_text())
        init = "pretrained" if ft.get("pretrained", True) else "random init"
        for split, r in ft.get("splits", {}).items():
            rows.append({"run": path.parent.name, "backbone": init, "split": split,
                         "video-level top-1": r["video_top1"], "clip-level top-1": r["clip_top1"],
                         "test videos": r["n_test_videos"], "steps": r["steps"]})
        if len(ft.get("splits", {})) > 1:
            rows.append({"run": path.parent.name, "backbone": init, "split": "mean",
                         "video-level top-1": ft["mean"]["video_top1"], "clip-level top-1": ft["mean"]["clip_top1"]})
        notes.append(ft.get("definition", ""))
    if not rows:
        return ""
    cols = ["run", "backbone", "split", "video-level top-1", "clip-level top-1", "test videos", "steps"]
    return ("<h2>Fine-tuning</h2><p class='muted'>" + esc(sorted(set(notes))[0]) + "; held-out test split.</p>"
            + table(rows, cols))


def protocols_section(eval_dir: Path) -> str:
    """The summaries of ``python -m pipeline eval protocol=...`` in the eval folder."""
    parts = []
    for name, title in PROTOCOL_TITLES.items():
        path = eval_dir / f"{name}.json"
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        mean, rnd = s.get("mean", {}), s.get("mean", {}).get("random_init", {})
        flag = " (in-sample)" if s.get("in_sample") else ""
        rows = [{"metric": k + flag, "trained": v, "random init": rnd.get(k, "")}
                for k, v in mean.items() if isinstance(v, float)]
        parts.append(f"<h3>{esc(title)}</h3><p class='muted'>{esc(s.get('definition', ''))}; mean over "
                     f"{len(s.get('parts', {}))} split(s): {esc(', '.join(s.get('parts', {})))}.</p>"
                     + table(rows, ["metric", "trained", "random init"]))
    return "<h2>Downstream protocols</h2>" + "".join(parts) if parts else ""
