"""``python -m pipeline cluster``: SeLaVi training, then the final self-labels of the
whole dataset as a file, clustering metrics against labels when the corpus has them,
and a cluster browser page."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from pipeline.errors import ConfigError
from pipeline.eval.clustering import clustering_metrics
from pipeline.io.atomic import atomic_open, write_json
from pipeline.report.cluster_browser import write_cluster_browser
from pipeline.shard.index import class_names, has_index
from pipeline.train.distributed import setup_distributed
from pipeline.train.engine import hold_on_main, train
from pipeline.train.method import StepContext, final_weights
from pipeline.train.methods import build_method
from pipeline.train.methods.selavi import RunConfig, SeLaViMethod

log = logging.getLogger(__name__)


def label_corpus(cfg: RunConfig) -> SeLaViMethod:
    """The trained model's self-labels of every sample (collective over ranks)."""
    info = setup_distributed()
    method = build_method(cfg, "selavi")
    method.load_state_dict(load_file(final_weights(cfg.out)), strict=False)
    method.to(info.device)
    method.relabel(StepContext(info=info, step=cfg.steps, total_steps=cfg.steps, engine=None))
    return method


def write_outputs(cfg: RunConfig, method: SeLaViMethod) -> dict:
    out = Path(cfg.out)
    labels = method.labels.cpu().numpy()
    with atomic_open(out / "labels.csv", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key"] + [f"head{j}" for j in range(labels.shape[1])])
        for key, row in zip(method.keys, labels):
            w.writerow([key, *row.tolist()])
    true = np.asarray(method.true_labels)
    result: dict = {"samples": len(method.keys), "clusters": cfg.selavi.clusters, "heads": cfg.selavi.heads}
    if len(true) and true.min() >= 0:
        per_head = [clustering_metrics(true, labels[:, j]) for j in range(labels.shape[1])]
        result.update(per_head[0])
        result["best_head_nmi"] = max(m["nmi"] for m in per_head)
        result["mean_nmi"] = float(np.mean([m["nmi"] for m in per_head]))
        result["per_head"] = per_head
    write_json(out / "cluster_eval.json", result, indent=2)
    write_cluster_browser(out / "clusters.html", cfg.loader.shards, method.keys, labels[:, 0],
                          method.confidence.numpy(), list(true) if len(true) else None,
                          class_names(cfg.loader.shards) if has_index(cfg.loader.shards) else [], title=f"SeLaVi clusters: {out.name}")
    return result


def run(cfg: RunConfig) -> dict:
    if cfg.method != "selavi":
        raise ConfigError(f"cluster: method must be selavi, got {cfg.method!r}")
    is_main = setup_distributed().is_main
    with hold_on_main(Path(cfg.out), "cluster", is_main):  # training, labels and browser: one owner
        result = train(cfg)
        if result["status"] != "done":
            return result
        method = label_corpus(cfg)
        if is_main:
            result.update(write_outputs(cfg, method))
            log.info("cluster: NMI %s ARI %s acc %s -> %s", result.get("nmi"), result.get("ari"),
                     result.get("cluster_acc"), Path(cfg.out) / "clusters.html")
        return result
