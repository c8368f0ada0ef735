"""``python -m pipeline eval``: exported backbones on labelled shards, beside the same
architectures at random initialisation.

kNN (cosine, k = 1 and 20) and linear probes on backbone features, fitted on
``train_shards`` and scored on ``test_shards``; audio<->video (and video->text)
retrieval on the test set's projected embeddings; k-means clustering of the test
features (K = number of classes); detection mAP@0.5 and SeLaVi clustering copied from
their stages' results when given. Writes ``eval.json`` and ``embeddings.npz``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize

from pipeline.config import MISSING, save_config
from pipeline.errors import InputError
from pipeline.eval.clustering import clustering_metrics
from pipeline.eval.features import extract
from pipeline.eval.knn import knn_accuracy
from pipeline.eval.linear_probe import linear_probe_accuracy
from pipeline.eval.retrieval import gt_ranks, retrieval_metrics
from pipeline.io.atomic import save_npz, write_json

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    export: str = field(default=MISSING, metadata={"help": "export folder (video/, audio/, text/)"})
    train_shards: str = field(default=MISSING, metadata={"help": "labelled shards the kNN memory and probes are fitted on"})
    test_shards: str = field(default=MISSING, metadata={"help": "labelled held-out shards scored"})
    out: str = field(default=MISSING, metadata={"help": "folder for eval.json and embeddings.npz"})
    random_init: bool = field(default=True, metadata={"help": "also evaluate the same architectures at random init"})
    detect_eval: str = field(default="", metadata={"help": "detect_eval.json of the detection stage (adds map50)"})
    cluster_eval: str = field(default="", metadata={"help": "cluster_eval.json of the cluster stage (adds selavi_*)"})
    batch_size: int = field(default=32, metadata={"help": "clips per batch", "min": 1})
    workers: int = field(default=2, metadata={"help": "loader workers", "min": 0})
    seed: int = field(default=0, metadata={"help": "seed of the random-init networks and k-means", "min": 0})


def _retrieval(test: dict) -> dict:
    out: dict = {}
    if "audio_emb" in test:
        out.update(retrieval_metrics(torch.as_tensor(test["audio_emb"]), torch.as_tensor(test["video_emb"]), "a2v"))
        out.update(retrieval_metrics(torch.as_tensor(test["video_emb"]), torch.as_tensor(test["audio_emb"]), "v2a"))
    if "text_emb" in test:
        out.update(retrieval_metrics(torch.as_tensor(test["video_emb"]), torch.as_tensor(test["text_emb"]), "v2t"))
    return out


def _metrics(train: dict, test: dict, seed: int) -> dict:
    ytr, yte = torch.as_tensor(train["label"]), torch.as_tensor(test["label"])
    out = _retrieval(test)
    if (ytr < 0).any() or (yte < 0).any():
        log.warning("eval: the shards have unlabelled clips; only retrieval is measured")
        out["note"] = "unlabelled corpus: kNN, linear probe and clustering need labels"
        return out
    feats = {"video": "video_feat", "audio": "audio_feat"}
    for name, key in feats.items():
        if key not in test:
            continue
        xtr, xte = torch.as_tensor(train[key]), torch.as_tensor(test[key])
        sfx = "" if name == "video" else f"_{name}"
        out[f"knn_top1_k1{sfx}"] = knn_accuracy(xtr, ytr, xte, yte, k=1)
        out[f"knn_top1_k20{sfx}"] = knn_accuracy(xtr, ytr, xte, yte, k=20)
        out[f"linear_top1{sfx}"] = linear_probe_accuracy(train[key], train["label"], test[key], test["label"])
    out["knn_top1"] = out["knn_top1_k20"]
    if "audio_feat" in test:
        both_tr = np.concatenate([normalize(train["video_feat"]), normalize(train["audio_feat"])], 1)
        both_te = np.concatenate([normalize(test["video_feat"]), normalize(test["audio_feat"])], 1)
        out["knn_top1_av"] = knn_accuracy(torch.as_tensor(both_tr), ytr, torch.as_tensor(both_te), yte, k=20)
    k = len(np.unique(test["label"]))
    x = normalize(test["video_feat"])
    clusters = KMeans(k, n_init=10, random_state=seed).fit_predict(x)
    out.update(clustering_metrics(test["label"], clusters))
    return out


def _examples(test: dict, n: int = 6) -> list[dict]:
    """Audio->video retrieval examples: query key and the top-5 video keys."""
    if "audio_emb" not in test:
        return []
    q, c = torch.as_tensor(test["audio_emb"]), torch.as_tensor(test["video_emb"])
    sim = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(c, dim=1).T
    ranks = gt_ranks(q, c)
    rows = []
    for i in np.linspace(0, len(q) - 1, min(n, len(q))).astype(int):
        top = sim[i].topk(min(5, len(c))).indices.tolist()
        rows.append({"query": str(test["key"][i]), "label": int(test["label"][i]), "rank": int(ranks[i]),
                     "top": [{"key": str(test["key"][j]), "label": int(test["label"][j])} for j in top]})
    return rows


def run(cfg: EvalConfig) -> dict:
    out, export = Path(cfg.out), Path(cfg.export)
    if not (export / "video" / "config.json").exists():
        raise InputError(f"export={export}: no exported video backbone (run `python -m pipeline export` first)")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "eval_config.yaml")
    result: dict = {}
    for tag, pretrained in [("trained", True), ("random_init", False)][: 2 if cfg.random_init else 1]:
        train = extract(export, cfg.train_shards, pretrained, cfg.batch_size, cfg.workers, cfg.seed, f"{tag}/train")
        test = extract(export, cfg.test_shards, pretrained, cfg.batch_size, cfg.workers, cfg.seed, f"{tag}/test")
        metrics = _metrics(train, test, cfg.seed)
        if pretrained:
            result.update(metrics)
            result["n_train"], result["n_test"] = len(train["key"]), len(test["key"])
            save_npz(out / "embeddings.npz", test)
            write_json(out / "retrieval_examples.json", _examples(test))
        else:
            result["random_init"] = metrics
    if cfg.detect_eval:
        det = json.loads(Path(cfg.detect_eval).read_text())
        if "map50" in det:  # absent when the evaluation shards have no boxes
            result["map50"] = det["map50"]
        if "random_init" in det and "map50" in det["random_init"]:
            result.setdefault("random_init", {})["map50"] = det["random_init"]["map50"]
    if cfg.cluster_eval:
        ce = json.loads(Path(cfg.cluster_eval).read_text())
        result.update({f"selavi_{k}": ce[k] for k in ("nmi", "ari", "cluster_acc") if k in ce})
    write_json(out / "eval.json", result, indent=2)
    log.info("eval: kNN %.3f (random %.3f), R@1 a2v %.1f -> %s", result.get("knn_top1", float("nan")),
             result.get("random_init", {}).get("knn_top1", float("nan")), result.get("r_at_1_a2v", float("nan")),
             out / "eval.json")
    return result
