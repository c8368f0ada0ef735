"""The Faster R-CNN detector: trains a few steps on frames with boxes, predicts boxes in
torchvision's format (pixels, scores, cluster ids), classifies given boxes, and survives
a save/load round trip; its tiny backbone takes the AV frame net's weights."""
import numpy as np
import pytest
import torch

from pipeline.detect.detector import (DetectorConfig, build_detector, classify_boxes, init_backbone_from_av,
                                      load_detector, predict, save_detector, train_detector)
from pipeline.loader.video_transforms import KINETICS_MEAN, KINETICS_STD
from pipeline.train.methods.avloc import FrameNet

CFG = DetectorConfig(widths=[8, 16, 16], anchor_sizes=[8, 16], representation=32, steps=4,
                     batch_size=2, rpn_samples=32, roi_samples=16, proposals=[50, 20], warmup_steps=2)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: oversubscribed OpenMP threads on a shared CPU cost more than they bring."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _frames(n=6, size=32):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (n, 3, size, size), generator=g, dtype=torch.uint8)
    boxes = []
    for i in range(n):  # a bright square per frame, its box as the pseudo label
        x0, y0 = 2 + 3 * i, 4 + 2 * i
        images[i, :, y0:y0 + 12, x0:x0 + 12] = 230
        boxes.append(np.array([[x0 / size, y0 / size, (x0 + 12) / size, (y0 + 12) / size]], np.float32))
    boxes[-1] = np.zeros((0, 4), np.float32)  # a frame without a pseudo box: background only
    return images, boxes


def test_train_predict_classify_and_reload(tmp_path):
    torch.manual_seed(0)
    images, boxes = _frames()
    det = build_detector(CFG, 3, KINETICS_MEAN, KINETICS_STD, 32)
    history = train_detector(det, zip(images, boxes, [0, 1, 2, 0, 1, 2]), CFG)
    assert len(history) == 4 and all(np.isfinite(r["loss"]) for r in history)
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(history[0])
    dets = predict(det, images)
    assert len(dets) == len(images)
    for d in dets:
        m = len(d["scores"])
        assert d["boxes"].shape == (m, 4) and d["labels"].shape == (m,)
        assert d["labels"].dtype == torch.int64 and (d["labels"] >= 0).all() and (d["labels"] < 3).all()
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 32).all()
        assert (d["boxes"][:, 2:] >= d["boxes"][:, :2]).all()
        assert (d["scores"][:-1] >= d["scores"][1:]).all() if m > 1 else True
    probs = classify_boxes(det, images[:5], torch.tensor(np.concatenate(boxes[:5])))
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)
    save_detector(det, tmp_path / "detector", CFG, 3, KINETICS_MEAN, KINETICS_STD, 32)
    again, meta = load_detector(tmp_path / "detector")
    assert meta["n_clusters"] == 3
    redo = predict(again, images)
    assert all(torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
               for a, b in zip(dets, redo))


def test_tiny_backbone_starts_from_the_av_frame_net():
    det = build_detector(CFG, 3, KINETICS_MEAN, KINETICS_STD, 32)
    av = FrameNet([8, 16, 16])
    state = {f"visual.{k}": v for k, v in av.state_dict().items()}
    assert init_backbone_from_av(det, state) == len(av.state_dict())
    assert all(torch.equal(det.backbone.state_dict()[k], v) for k, v in av.state_dict().items())
    other = {f"visual.{k}": v for k, v in FrameNet([8, 16, 32]).state_dict().items()}
    assert init_backbone_from_av(det, other) == 0  # a different architecture is left alone
