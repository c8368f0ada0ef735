"""Naming clusters (Hungarian, argmax, k-shot prototypes), renaming detections, mAP@0.5
and localisation accuracy on cases whose answers are known."""
import numpy as np
import pytest
import torch

from pipeline.detect.metrics import boxes_as_detections, loc_accuracy, map50, rename
from pipeline.detect.naming import (argmax_naming, hungarian_naming, kshot_naming, pick_shots,
                                    prototype_naming)


def test_hungarian_is_one_to_one_and_argmax_many_to_one():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    clusters = np.array([5, 5, 7, 7, 7, 7, 3, 3, 3, 5])
    assert hungarian_naming(labels, clusters) == {5: 0, 7: 1, 3: 2}
    # cluster 7 holds one 0 and three 1s; with 4 clusters for 3 classes argmax names them all
    clusters4 = np.array([5, 5, 9, 7, 7, 7, 3, 3, 3, 9])
    assert argmax_naming(labels, clusters4) == {3: 2, 5: 0, 7: 1, 9: 0}
    h = hungarian_naming(labels, clusters4)
    assert len(h) == 3 and len(set(h.values())) == 3 and 9 not in h  # the leftover cluster stays unnamed


def test_prototype_naming_from_cluster_probabilities():
    # class 0 objects land in cluster 2, class 1 in cluster 0, class 2 in cluster 1 (and 3)
    scores = np.array([[0.1, 0.1, 0.8, 0.0], [0.0, 0.2, 0.8, 0.0],
                       [0.9, 0.1, 0.0, 0.0], [0.7, 0.1, 0.1, 0.1],
                       [0.0, 0.5, 0.1, 0.4], [0.1, 0.6, 0.0, 0.3]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert prototype_naming(scores, labels) == {0: 1, 1: 2, 2: 0, 3: 2}
    rng = np.random.default_rng(0)
    idx = pick_shots(labels, 1, rng)
    assert sorted(labels[idx].tolist()) == [0, 1, 2]
    assert len(pick_shots(labels, 10, rng)) == 6          # fewer than k: all of them
    assert kshot_naming(scores, labels, 1, np.random.default_rng(1))[2] == 0


def _det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels)}


def test_map50_known_case():
    size = (100, 100)
    gt = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9], [float("nan")] * 4])
    labels = torch.tensor([0, 1, -1])
    perfect = [_det([[10, 10, 50, 50]], [0.9], [0]), _det([[50, 50, 90, 90]], [0.8], [1]), _det([], [], [])]
    assert map50(perfect, gt, labels, size) == pytest.approx(1.0)
    # a higher-scoring false positive of class 1 on the empty frame: AP(1) = 0.5, mAP = 0.75
    with_fp = perfect[:2] + [_det([[0, 0, 30, 30]], [0.95], [1])]
    assert map50(with_fp, gt, labels, size) == pytest.approx(0.75)
    # IoU 0.40 (< 0.5) is a miss: AP(0) = 0, mAP = 0.5
    shifted = [_det([[10, 27, 50, 67]], [0.9], [0])] + perfect[1:]
    assert map50(shifted, gt, labels, size) == pytest.approx(0.5)


def test_rename_drops_unnamed_and_merges_duplicates():
    d = _det([[0, 0, 10, 10], [1, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [4, 6, 5])
    out = rename([d], {4: 0, 6: 0})[0]                   # 4 and 6 both name class 0; 5 unnamed
    assert out["labels"].tolist() == [0] and out["scores"].tolist() == [pytest.approx(0.9)]


def test_loc_accuracy_and_av_boxes_as_detections():
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [float("nan")] * 4, [0.0, 0.0, 1.0, 1.0]])
    pred = [np.array([[0.0, 0.0, 0.5, 0.4]]),           # IoU 0.8: hit
            np.array([[0.0, 0.0, 0.5, 0.5]]),           # IoU 0: miss
            np.array([[0.0, 0.0, 1.0, 1.0]]),           # no ground truth: not counted
            np.zeros((0, 4))]                           # nothing predicted: miss
    assert loc_accuracy(pred, gt) == pytest.approx(1 / 3)
    dets = boxes_as_detections(pred, torch.tensor([2, 2, 2, 2]), torch.tensor([0.9, 0.8, 0.7, 0.6]), (10, 10))
    assert dets[0]["boxes"].tolist() == [[0.0, 0.0, 5.0, 4.0]] and dets[3]["boxes"].shape == (0, 4)
