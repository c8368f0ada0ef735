"""The downstream protocols of the papers, on frozen exported backbones (``python -m
pipeline eval protocol=NAME``); each scored beside the same network at random init.

- ``linear``: video-level linear probe (each video = the mean of its clips' features),
  weight decay chosen on a held-out fifth of the training videos (CoCLR's protocol).
- ``retrieval``: each test video (mean of its clips) queries the training videos; R@K =
  percent of queries with a same-class video among the top K (CoCLR / VCOP).
- ``esc50``: audio features (mean over clips), the official 5 folds: a linear probe
  trained on four folds scores the fifth; the mean over folds (AVID-CMA's setting).
- ``clustering``: k-means of one centre clip per test video, K = number of classes:
  NMI, adjusted NMI, ARI, Hungarian accuracy, purity (SeLaVi's protocol).

Layouts (the shard stage's): a split root holds ``train/`` and ``test/`` (UCF101 and
HMDB51 split k, folder corpora); an ESC-50 root holds ``fold1/`` .. ``fold5/``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.errors import InputError
from pipeline.eval.clustering import kmeans_labels, selavi_metrics
from pipeline.eval.feature_store import (FeatureSet, by_video, concat, middle_sample_rows,
                                         select_rows)
from pipeline.eval.labels import class_names, label_map, remap
from pipeline.eval.linear_probe import linear_probe
from pipeline.eval.retrieval import class_retrieval
from pipeline.shard.keys import sanitise

ESC50_FOLDS = 5
DEFINITIONS = {
    "linear": "video-level linear probe: each video = mean of its clips' backbone features (uniformly "
              "spaced clips, centre crop); weight decay chosen on a held-out fifth of the training videos; "
              "top-1 on the test videos",
    "retrieval": "video retrieval (CoCLR/VCOP): each test video (mean of its clips' features) queries the "
                 "training videos by cosine similarity; R@K = % of queries with a same-class video in the top K",
    "esc50": "ESC-50: audio backbone features (mean over uniformly spaced windows) of each clip; linear "
             "probe trained on 4 official folds, top-1 on the 5th; mean over the 5 folds",
    "clustering": "k-means (K = number of classes) of one centre clip per test video (one temporal and "
                  "spatial crop); NMI, adjusted NMI, ARI, Hungarian accuracy, purity (SeLaVi)",
}


@dataclass(frozen=True)
class Part:
    """One unit of a protocol (a split or a fold): training and test shard folders."""
    name: str
    train: tuple[str, ...]
    test: str


def parts(protocol: str, splits: list[str], folds: str, train_shards: str, test_shards: str) -> list[Part]:
    if protocol == "esc50":
        if not folds:
            raise InputError("protocol=esc50: set folds=DIR (the ESC-50 shards: fold1/ .. fold5/)")
        dirs = [Path(folds) / f"fold{k}" for k in range(1, ESC50_FOLDS + 1)]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise InputError(f"folds={folds}: missing {', '.join(missing)} (shard ESC-50 with dataset=esc50)")
        return [Part(d.name, tuple(str(o) for o in dirs if o != d), str(d)) for d in dirs]
    if splits:
        out = []
        for i, root in enumerate(splits):
            train, test = Path(root) / "train", Path(root) / "test"
            if not (train.is_dir() and test.is_dir()):
                raise InputError(f"splits[{i}]={root}: needs train/ and test/ shard folders")
            out.append(Part(f"split{i + 1}", (str(train),), str(test)))
        return out
    if not (train_shards and test_shards):
        raise InputError(f"protocol={protocol}: set splits=[ROOT, ...] or train_shards and test_shards")
    return [Part("", (train_shards,), test_shards)]


def folder_name(shards: str) -> str:
    """Cache folder of a shard folder's features: its readable name + a hash of its path."""
    digest = hashlib.sha1(str(Path(shards).resolve()).encode()).hexdigest()[:10]
    return f"{sanitise(Path(shards).name or 'shards', 30)}-{digest}"


def needs(protocol: str) -> tuple[tuple[str, ...], bool, bool]:
    """(modalities to extract, multi-clip features, needs training features)."""
    return {"linear": (("video",), True, True), "retrieval": (("video",), True, True),
            "esc50": (("audio",), True, True), "clustering": (("video",), False, False)}[protocol]


def _column(fs: FeatureSet, protocol: str) -> str:
    col = "audio_feat" if protocol == "esc50" else "video_feat"
    if col not in fs:
        raise InputError(f"protocol={protocol}: the export has no {col.split('_')[0]} backbone")
    return col


def _labelled(fs: FeatureSet, what: str) -> None:
    if fs.n == 0:
        raise InputError(f"{what}: no samples could be read")
    if (fs.labels < 0).any():
        raise InputError(f"{what}: {(fs.labels < 0).sum()} of {fs.n} samples have no label")


def linear(train: FeatureSet, test: FeatureSet, col: str, work: Path, seed: int) -> dict:
    tr, te = by_video(train, [col], work / "train_videos"), by_video(test, [col], work / "test_videos")
    res = linear_probe(tr[col], tr.labels, te[col], te.labels, seed=seed)
    return {"top1": res["top1"], "weight_decay": res["weight_decay"], "val_top1": res["val_top1"],
            "n_train_videos": tr.n, "n_test_videos": te.n}


def retrieval(train: FeatureSet, test: FeatureSet, col: str, work: Path, seed: int) -> dict:
    tr, te = by_video(train, [col], work / "train_videos"), by_video(test, [col], work / "test_videos")
    return {**class_retrieval(te[col], te.labels, tr[col], tr.labels),
            "n_train_videos": tr.n, "n_test_videos": te.n}


def clustering(train: FeatureSet | None, test: FeatureSet, col: str, work: Path, seed: int) -> dict:
    one = select_rows(test, middle_sample_rows(test), work / "one_clip_per_video", "middle")
    k = len(np.unique(one.labels))
    return {**selavi_metrics(one.labels, kmeans_labels(one[col], k, seed)), "k": k, "n_videos": one.n}


SCORERS: dict[str, Callable] = {"linear": linear, "retrieval": retrieval, "esc50": linear,
                                "clustering": clustering}


def score(protocol: str, part: Part, extract: Callable[[str], FeatureSet], work: Path, seed: int) -> dict:
    """Metrics of one part for one network: ``extract(shards)`` gives a shard folder's
    features (cached per folder), ``work`` holds the derived sets."""
    _, _, with_train = needs(protocol)
    canonical = class_names(part.train[0])
    test = in_classes(extract(part.test), part.test, canonical)
    _labelled(test, f"test shards {part.test}")
    train = None
    if with_train:
        sets = [in_classes(extract(t), t, canonical) for t in part.train]
        for t, fs in zip(part.train, sets):
            _labelled(fs, f"training shards {t}")
        tag = hashlib.sha1("\n".join(canonical).encode()).hexdigest()[:10]
        train = sets[0] if len(sets) == 1 else concat([(fs, None) for fs in sets], work / "train", tag)
    return SCORERS[protocol](train, test, _column(test, protocol), work, seed)


def in_classes(fs: FeatureSet, shards: str, canonical: list[str]) -> FeatureSet:
    """The set with its labels as ids of ``canonical`` (mapped by class name)."""
    return replace(fs, labels=remap(fs.labels, label_map(class_names(shards), canonical)))


def mean_over(results: dict[str, dict]) -> dict:
    """Mean of every metric (float) over parts, and of their random_init rows; counts
    and chosen hyper-parameters are per part only."""
    def avg(rows: list[dict]) -> dict:
        keys = [k for k, v in rows[0].items() if isinstance(v, float) and k != "weight_decay"]
        return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    rows = list(results.values())
    out = avg(rows)
    rnd = [r["random_init"] for r in rows if "random_init" in r]
    if rnd:
        out["random_init"] = avg(rnd)
    return out
