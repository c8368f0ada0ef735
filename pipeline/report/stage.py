"""``python -m pipeline report``: one offline HTML page per run: training curves, the
evaluation table beside random init, a 2-D projection of the embeddings, retrieval
examples with thumbnails, and links to the cluster browser and detection pictures."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from pipeline.config import MISSING
from pipeline.eval.results import has_eval, read_eval
from pipeline.io.atomic import write_text
from pipeline.io.folder_lock import hold
from pipeline.loader.lookup import read_samples
from pipeline.report.cluster_browser import _thumb
from pipeline.report.downstream import finetune_section, in_sample_banner, metric_name, protocols_section
from pipeline.report.figures import curves, projection, stratified_rows
from pipeline.report.html import esc, page, png_tag, table
from pipeline.eval.modalities import FLAG, per_modality
from pipeline.shard.index import class_names, has_index
from pipeline.train.metrics_log import has_metrics, read_metrics

log = logging.getLogger(__name__)

EVAL_ROWS = [("knn_top1", "kNN top-1 (video, k=20)"), ("knn_top1_k1", "kNN top-1 (video, k=1)"),
             ("linear_top1", "linear probe top-1 (video)"), ("knn_top1_k20_audio", "kNN top-1 (audio, k=20)"),
             ("knn_top1_av", "kNN top-1 (video+audio)"), ("r_at_1_a2v", "R@1 audio->video"),
             ("r_at_5_a2v", "R@5 audio->video"), ("r_at_10_a2v", "R@10 audio->video"),
             ("medr_a2v", "median rank audio->video"), ("r_at_1_v2a", "R@1 video->audio"),
             ("r_at_1_v2t", "R@1 video->text"), ("nmi", "k-means NMI (video)"), ("ari", "k-means ARI (video)"),
             ("cluster_acc", "k-means accuracy (video)"), ("selavi_nmi", "SeLaVi NMI"),
             ("selavi_ari", "SeLaVi ARI"), ("selavi_cluster_acc", "SeLaVi accuracy"),
             ("map50", "detection mAP@0.5")]

@dataclass
class ReportConfig:
    run_dir: str = field(default=MISSING, metadata={"help": "pipeline run folder (the demo's OUT)"})
    test_shards: str = field(default="", metadata={"help": "shards of the evaluated clips, for thumbnails (default: run_dir/shards/test)"})
    class_names: list[str] = field(default_factory=list, metadata={"help": "class names (default: the shards' index.json)"})
    out: str = field(default="", metadata={"help": "report path (default: run_dir/report.html)"})
    projection_points: int = field(default=2000, metadata={
        "help": "t-SNE on at most this many held-out clips, a stratified sample (the same number per "
                "class), so its cost does not grow with the test set; the page says how many", "min": 1})

def _eval_table(ev: dict) -> str:
    rnd = ev.get("random_init", {})
    rows = []
    for key, name in EVAL_ROWS:
        if key in ev:
            rows.append({"metric": metric_name(key, name, ev), "trained": ev[key], "random init": rnd.get(key, "")})
    return table(rows, ["metric", "trained", "random init"])

def _modality_table(ev: dict) -> str:
    """Video, audio and joint, each beside random init; a metric training did not
    clearly lift above random init says so in red."""
    pm = ev.get("per_modality") or per_modality(ev)
    rows = ["<tr><th>modality</th><th>metric</th><th>trained</th><th>random init</th><th></th></tr>"]
    for mod, metrics in pm.items():
        for row in metrics.values():
            note = "" if row.get("clearly_above", True) else f"<span class='bad'>{esc(FLAG)}</span>"
            rnd = row.get("random_init", "")
            rows.append(f"<tr><td>{esc(mod)}</td><td>{esc(row['label'])}</td><td>{esc(_fmt(row['trained']))}</td>"
                        f"<td>{esc(_fmt(rnd))}</td><td>{note}</td></tr>")
    return "<h3>Per modality</h3><table>" + "".join(rows) + "</table>" if len(rows) > 1 else ""

def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)

def _retrieval(examples: list[dict], shards: str, names: list[str]) -> str:
    if not examples or not shards:
        return "<p class='muted'>no retrieval examples</p>"
    keys = {e["query"] for e in examples} | {t["key"] for e in examples for t in e["top"]}
    samples = read_samples(shards, keys)
    name = (lambda y: names[y] if 0 <= y < len(names) else ("" if y < 0 else str(y)))
    labelled = all(e["label"] >= 0 for e in examples)
    parts = ["<p class='muted'>Each row: an audio query (its own clip shown), then the five videos "
             "whose embeddings are nearest; " + ("green = same class." if labelled else
                                                 "the corpus has no labels.") + "</p>"]
    for e in examples:
        cells = [f"<div class='card'><b>query</b><br>{_thumb(samples[e['query']]) if e['query'] in samples else ''}"
                 f"<br>{esc(name(e['label']))}<br>true rank {esc(e['rank'] + 1)}</div>"]
        for t in e["top"]:
            ok = ("good" if t["label"] == e["label"] else "bad") if labelled else "muted"
            img = _thumb({k: v for k, v in samples[t["key"]].items() if k != "wav"}) if t["key"] in samples else ""
            cells.append(f"<div class='card'>{img}<br><span class='{ok}'>{esc(name(t['label']))}</span></div>")
        parts.append("<div class='grid'>" + "".join(cells) + "</div><br>")
    return "".join(parts)

def build_report(cfg: ReportConfig) -> Path:
    run = Path(cfg.run_dir)
    shards = cfg.test_shards or str(run / "shards" / "test")
    names = list(cfg.class_names) or (class_names(shards) if has_index(shards) else [])  # unlabelled: ids
    body = [f"<h1>Pipeline report: {esc(run.name)}</h1>"]
    summary = run / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        body.append("<p class='muted'>" + " &middot; ".join(
            f"{esc(k)}: {esc(round(v, 1) if isinstance(v, float) else v)}" for k, v in s.items()) + "</p>")
    runs = {d.name: read_metrics(d) for d in sorted(run.iterdir()) if has_metrics(d)}
    runs.update({f"{p.parent.name}/{p.name}": read_metrics(p)  # fine-tuning: a run per split
                 for p in sorted(run.glob("*/split*")) if has_metrics(p)})
    if runs:
        body.append("<h2>Training</h2>" + png_tag(curves(runs), "training curves", width=1150))
    if has_eval(run / "eval"):
        ev = read_eval(run / "eval")
        held = "test (in-sample)" if ev.get("in_sample") else "held-out"
        body.append(f"<h2>Evaluation</h2>{in_sample_banner(ev)}<p class='muted'>{esc(ev.get('n_train', '?'))} "
                    f"training and {esc(ev.get('n_test', '?'))} {held} clips; the same architectures at random "
                    "initialisation beside the trained ones.</p>" + _modality_table(ev)
                    + "<details><summary>all metrics</summary>" + _eval_table(ev) + "</details>")
        emb = run / "eval" / "embeddings.npz"
        if emb.exists():
            z = np.load(emb)
            if (z["label"] >= 0).all():
                rows = stratified_rows(z["label"], cfg.projection_points)
                total = int(z["sampled_from"]) if "sampled_from" in z else len(z["label"])
                sets = {m: z[f"{m}_emb"][rows] for m in ("video", "audio") if f"{m}_emb" in z}
                body.append("<h2>Embeddings</h2><p class='muted'>t-SNE of " + (
                    f"{len(rows)} of the {total} held-out clips: a stratified sample, the same "
                    "number per class" if len(rows) < total else f"all {total} held-out clips") + "</p>"
                    + png_tag(projection(sets, z["label"][rows], names), "t-SNE", width=1100))
        ex = run / "eval" / "retrieval_examples.json"
        if ex.exists():
            body.append("<h2>Retrieval examples</h2>" + _retrieval(json.loads(ex.read_text()), shards, names))
    body.append(finetune_section(run) + protocols_section(run / "eval"))
    links = []
    for sub in sorted(run.iterdir()):
        if (sub / "clusters.html").exists():
            # "./" + percent-encoding: a folder named "javascript:..." stays a relative link
            links.append(f"<a href='./{esc(quote(sub.name))}/clusters.html'>cluster browser "
                         f"({esc(sub.name)})</a>")
    det = sorted(run.glob("*/detect_eval.json"))
    if links or det:
        body.append("<h2>Clusters and detection</h2>" + "<br>".join(links))
    for d in det:
        de = json.loads(d.read_text())
        body.append(f"<h3>{esc(d.parent.name)}</h3>" + table([{k: v for k, v in de.items()
                                                              if isinstance(v, (int, float))}]))
        for png in sorted(d.parent.glob("*.png")):
            body.append(f"<p>{esc(png.name)}</p>" + png_tag(png.read_bytes(), png.name, width=1100))
    path = Path(cfg.out) if cfg.out else run / "report.html"
    with hold(path.parent, "report", name=f".{path.name}.lock", label=path):  # the page, not the run folder
        write_text(path, page(f"report: {run.name}", "".join(body)))
    log.info("report -> %s", path)
    return path

def run(cfg: ReportConfig) -> dict:
    return {"report": str(build_report(cfg))}
