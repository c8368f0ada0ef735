"""``python -m pipeline eval``: exported backbones on labelled shards, beside the same
architectures at random initialisation.

``protocol=default`` (the demo's): kNN (cosine, k = 1 and 20) and linear probes on
backbone features, fitted on ``train_shards`` and scored on ``test_shards``; audio<->video
(and video->text) retrieval on the test set's projected embeddings; k-means clustering
of the test features (K = number of classes); detection mAP@0.5 and SeLaVi clustering
copied from their stages' results when given. Writes ``eval.json``, ``embeddings.npz``
(a fixed-size sample for the report) and ``retrieval_examples.json``. When the test
shards are (partly) the training shards, every metric is in-sample and ``eval.json``
says so; kNN never counts a query's own video as a neighbour.

The papers' protocols (``linear``, ``retrieval``, ``esc50``, ``clustering``: see
``pipeline.eval.protocols``) write ``PROTOCOL/<split>.json`` per split or fold and
``PROTOCOL.json`` with all of them and their mean, beside ``eval.json``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import MISSING, ConfigError, to_yaml
from pipeline.errors import InputError
from pipeline.eval import protocols
from pipeline.eval.clustering import clustering_metrics, kmeans_labels
from pipeline.eval.feature_store import FeatureSet, remove_temporaries, video_runs
from pipeline.eval.features import extract
from pipeline.eval.knn import knn_accuracy
from pipeline.eval.labels import class_names
from pipeline.eval.linear_probe import linear_probe
from pipeline.eval.modalities import flagged, per_modality
from pipeline.export.manifest import verify_export
from pipeline.eval.neighbours import group_codes, topk_cosine
from pipeline.eval.results import write_eval
from pipeline.eval.retrieval import gt_ranks, retrieval_metrics
from pipeline.models.export_spec import has_spec
from pipeline.io.atomic import commit_together, json_writer, text_writer, write_json
from pipeline.io.folder_lock import hold
from pipeline.loader.loader import expand_shards
from pipeline.shard.index import has_index
from pipeline.shard.keys import video_of

log = logging.getLogger(__name__)
PROTOCOLS = ("default", "linear", "retrieval", "esc50", "clustering")
EMBEDDING_SAMPLE = 2000  # rows of embeddings.npz (the report's projection), stratified by label


@dataclass
class EvalConfig:
    export: str = field(default=MISSING, metadata={"help": "export folder (video/, audio/, text/)"})
    out: str = field(default=MISSING, metadata={"help": "folder for eval.json (or PROTOCOL.json), features/, embeddings.npz"})
    protocol: str = field(default="default", metadata={"help": "default (kNN, linear, A/V retrieval, k-means) | linear | retrieval | esc50 | clustering", "choices": list(PROTOCOLS)})
    train_shards: str = field(default="", metadata={"help": "labelled shards the kNN memory and probes are fitted on"})
    test_shards: str = field(default="", metadata={"help": "labelled held-out shards scored"})
    splits: list[str] = field(default_factory=list, metadata={"help": "protocols: shard roots, one per split, each with train/ and test/ (UCF101/HMDB51 split=1..3)"})
    folds: str = field(default="", metadata={"help": "protocol=esc50: the ESC-50 shard root with fold1/ .. fold5/"})
    only: int = field(default=-1, metadata={"help": "protocols: score only this split or fold (0-based; one array task each); -1: all", "min": -1})
    clips: int = field(default=10, metadata={"help": "protocols linear, retrieval, esc50: uniformly spaced clips averaged per sample", "min": 1})
    random_init: bool = field(default=True, metadata={"help": "also evaluate the same architectures at random init"})
    detect_eval: str = field(default="", metadata={"help": "detect_eval.json of the detection stage (adds map50)"})
    cluster_eval: str = field(default="", metadata={"help": "cluster_eval.json of the cluster stage (adds selavi_*)"})
    batch_size: int = field(default=32, metadata={"help": "clips per batch", "min": 1})
    workers: int = field(default=2, metadata={"help": "loader workers", "min": 0})
    seed: int = field(default=0, metadata={"help": "seed of the random-init networks, probes and k-means", "min": 0})


def _retrieval(test: FeatureSet) -> dict:
    out: dict = {}
    if "audio_emb" in test:
        out.update(retrieval_metrics(test["audio_emb"], test["video_emb"], "a2v"))
        out.update(retrieval_metrics(test["video_emb"], test["audio_emb"], "v2a"))
    if "text_emb" in test:
        out.update(retrieval_metrics(test["video_emb"], test["text_emb"], "v2t"))
    return out


def _metrics(train: FeatureSet, test: FeatureSet, seed: int) -> dict:
    out = _retrieval(test)
    if (train.labels < 0).any() or (test.labels < 0).any():
        log.warning("eval: the shards have unlabelled clips; only retrieval is measured")
        out["note"] = "unlabelled corpus: kNN, linear probe and clustering need labels"
        return out
    gtr, gte = group_codes([video_of(k) for k in train.keys], [video_of(k) for k in test.keys])
    for name in ("video", "audio"):
        key = f"{name}_feat"
        if key not in test:
            continue
        sfx = "" if name == "video" else f"_{name}"
        for k in (1, 20):
            out[f"knn_top1_k{k}{sfx}"] = knn_accuracy(train[key], train.labels, test[key], test.labels, k, gtr, gte)
        out[f"linear_top1{sfx}"] = linear_probe(train[key], train.labels, test[key], test.labels, gtr, seed=seed)["top1"]
    out["knn_top1"] = out["knn_top1_k20"]
    if "av_feat" in test:
        out["knn_top1_av"] = knn_accuracy(train["av_feat"], train.labels, test["av_feat"], test.labels, 20, gtr, gte)
    clusters = kmeans_labels(test["video_feat"], len(np.unique(test.labels)), seed)
    out.update(clustering_metrics(test.labels, clusters))
    return out


def _examples(test: FeatureSet, n: int = 6) -> list[dict]:
    """Audio->video retrieval examples: query key and the top-5 video keys."""
    if "audio_emb" not in test:
        return []
    rows = np.linspace(0, test.n - 1, min(n, test.n)).astype(int)
    q = np.asarray(test["audio_emb"][rows])
    _, top = topk_cosine(q, test["video_emb"], 5)
    ranks = gt_ranks(test["audio_emb"], test["video_emb"])[rows]
    return [{"query": str(test.keys[i]), "label": int(test.labels[i]), "rank": int(r),
             "top": [{"key": str(test.keys[j]), "label": int(test.labels[j])} for j in t.tolist()]}
            for i, r, t in zip(rows, ranks, top)]


def _embedding_sample(test: FeatureSet, n: int = EMBEDDING_SAMPLE) -> dict:
    """At most ``n`` test rows, spread evenly within each class, for the report's plot."""
    if test.n <= n:
        rows = np.arange(test.n)
    else:
        classes = np.unique(test.labels)
        per = max(1, n // len(classes))
        rows = np.sort(np.concatenate([c[np.linspace(0, len(c) - 1, min(per, len(c))).astype(int)]
                                       for c in (np.flatnonzero(test.labels == y) for y in classes)]))
    out = {"key": test.keys[rows], "label": test.labels[rows], "sampled_from": np.asarray(test.n)}
    out.update({name: np.asarray(col[rows]) for name, col in test.cols.items() if name.endswith("_emb")})
    return out


def labelled(shards: str) -> bool:
    """Shards with class names; shards without an index (unlabelled) keep their ids as
    they are, a broken index is the reader's error."""
    return has_index(shards) and bool(class_names(shards))


def in_sample(train_shards: str, test_shards: str) -> bool:
    """True when a test shard is also a training shard (no held-out split)."""
    tr = {str(Path(p).resolve()) for p in expand_shards(train_shards)}
    return any(str(Path(p).resolve()) in tr for p in expand_shards(test_shards))


def default_eval(cfg: EvalConfig, out: Path, export: Path) -> dict:
    if not (cfg.train_shards and cfg.test_shards):
        raise ConfigError("eval: set train_shards and test_shards")
    result: dict = {}
    for tag, pretrained in [("trained", True), ("random_init", False)][: 2 if cfg.random_init else 1]:
        feats = out / "features" / tag
        kw = dict(pretrained=pretrained, batch_size=cfg.batch_size, workers=cfg.workers, seed=cfg.seed)
        train = extract(export, cfg.train_shards, feats / "train", desc=f"{tag}/train", **kw)
        test = extract(export, cfg.test_shards, feats / "test", desc=f"{tag}/test", **kw)
        canonical = class_names(cfg.train_shards) if labelled(cfg.train_shards) else []
        if canonical:
            test = protocols.in_classes(test, cfg.test_shards, canonical)
        metrics = _metrics(train, test, cfg.seed)
        if pretrained:
            result.update(metrics)
            result["n_train"], result["n_test"] = train.n, test.n
            result["n_test_videos"] = len(video_runs(test.keys)[0])
            sample, examples = _embedding_sample(test), _examples(test)
        else:
            result["random_init"] = metrics
    if in_sample(cfg.train_shards, cfg.test_shards):
        measured = [k for k in result if k not in ("n_train", "n_test", "n_test_videos", "random_init", "note")]
        result.update(in_sample=True, in_sample_metrics=measured,
                      in_sample_note="test shards are training shards: every metric here is in-sample, "
                                     "not a result (kNN leaves each query's own video out)")
        log.warning("eval: test_shards overlap train_shards: every metric is IN-SAMPLE")
    else:
        result["in_sample"] = False
    if cfg.detect_eval:
        det = json.loads(Path(cfg.detect_eval).read_text())
        if "map50" in det:  # absent when the evaluation shards have no boxes
            result["map50"] = det["map50"]
        if "random_init" in det and "map50" in det["random_init"]:
            result.setdefault("random_init", {})["map50"] = det["random_init"]["map50"]
    if cfg.cluster_eval:
        ce = json.loads(Path(cfg.cluster_eval).read_text())
        result.update({f"selavi_{k}": ce[k] for k in ("nmi", "ari", "cluster_acc") if k in ce})
    result["per_modality"] = per_modality(result)
    result["no_better_than_random"] = flagged(result["per_modality"])
    for name in result["no_better_than_random"]:
        log.warning("eval: %s is no better than random init", name)
    path = write_eval(out, result, along=[  # committed with the config that made them
        (out / "eval_config.yaml", text_writer(to_yaml(cfg))),
        (out / "embeddings.npz", lambda fh: np.savez_compressed(fh, **sample)),
        (out / "retrieval_examples.json", json_writer(examples))])
    log.info("eval: kNN %.3f (random %.3f), R@1 a2v %.1f -> %s", result.get("knn_top1", float("nan")),
             result.get("random_init", {}).get("knn_top1", float("nan")), result.get("r_at_1_a2v", float("nan")),
             path)
    return result


def protocol_eval(cfg: EvalConfig, out: Path, export: Path) -> dict:
    """Each split or fold scored on its own (``only`` picks one: an array task); the
    summary with the mean is written once every part's JSON exists, by whichever run
    completes the set."""
    name = cfg.protocol
    parts = protocols.parts(name, cfg.splits, cfg.folds, cfg.train_shards, cfg.test_shards)
    if cfg.only >= len(parts):
        raise ConfigError(f"only={cfg.only}: protocol {name} has {len(parts)} part(s)")
    mods, multi, _ = protocols.needs(name)
    clips = cfg.clips if multi else 1
    for i, part in enumerate(parts):
        if cfg.only >= 0 and i != cfg.only:
            continue
        row: dict = {"train": list(part.train), "test": part.test, "clips": clips}
        if name != "clustering" and any(in_sample(t, part.test) for t in part.train):
            row["in_sample"] = True
        for tag, pretrained in [("trained", True), ("random_init", False)][: 2 if cfg.random_init else 1]:
            cache = out / "features" / f"{tag}-clips{clips}"

            def features(shards: str, tag=tag, pretrained=pretrained, cache=cache) -> FeatureSet:
                return extract(export, shards, cache / protocols.folder_name(shards), pretrained, cfg.batch_size,
                               cfg.workers, cfg.seed, clips, mods, desc=f"{tag}/{Path(shards).name}")
            work = out / name / (part.name or "all") / tag
            metrics = protocols.score(name, part, features, work, cfg.seed)
            row.update(metrics) if pretrained else row.update(random_init=metrics)
        (out / name).mkdir(parents=True, exist_ok=True)
        commit_together([(out / f"{name}_config.yaml", text_writer(to_yaml(cfg))),  # with the results it made
                         (out / name / f"{part.name or 'all'}.json", json_writer(row, indent=2))])
        log.info("eval %s %s: %s", name, part.name, {k: v for k, v in row.items() if isinstance(v, float)})
    done = {p.name or "all": out / name / f"{p.name or 'all'}.json" for p in parts}
    if not all(p.exists() for p in done.values()):
        return {"protocol": name, "complete": False}
    results = {k: json.loads(p.read_text()) for k, p in done.items()}
    summary = {"protocol": name, "definition": protocols.DEFINITIONS[name], "parts": results,
               "mean": protocols.mean_over(results), "complete": True,
               "in_sample": any(r.get("in_sample") for r in results.values())}
    write_json(out / f"{name}.json", summary, indent=2)
    return summary


def run(cfg: EvalConfig) -> dict:
    out, export = Path(cfg.out), Path(cfg.export)
    if not has_spec(export / "video"):
        raise InputError(f"export={export}: no exported video backbone (run `python -m pipeline export` first)")
    verify_export(export)  # whole, from one run: never score a half-replaced export
    part = cfg.protocol != "default" and cfg.only >= 0  # array tasks share the folder by design
    with hold(out, "eval", shared=part), hold(out, "eval", name=f".{cfg.protocol}-{cfg.only}.lock", enabled=part):
        if not part:  # the folder is ours alone: what killed writers left in it goes
            removed = remove_temporaries(out)
            if removed:
                log.info("eval: removed %d temporary file(s) left by an interrupted run in %s", removed, out)
        # the config is committed with the results it made (commit_together), never before
        if cfg.protocol == "default":
            return default_eval(cfg, out, export)
        return protocol_eval(cfg, out, export)
