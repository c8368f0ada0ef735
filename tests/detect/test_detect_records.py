"""The evaluation's per-frame records: frames are counted while they stream in, so the
pictures drawn during the pass are numbered by their place in the whole set (they were
all numbered within their batch, and drew other frames' ground truth and detections)."""
import torch

from pipeline.detect.records import Detections


def _dets(n: int, first: int) -> list[dict]:
    return [{"boxes": torch.full((k % 3, 4), float(first + k)), "scores": torch.ones(k % 3),
             "labels": torch.zeros(k % 3, dtype=torch.long)} for k in range(n)]


def test_frames_are_counted_before_finish_and_read_back_in_order():
    d = Detections()
    assert len(d) == 0
    d.extend(_dets(4, 0))
    assert len(d) == 4                     # a second batch is numbered from 4, not from 0
    d.extend(_dets(5, 4))
    assert len(d) == 9
    d.finish()
    assert len(d) == 9
    for i in range(9):                     # frame i's boxes (k = i - first of its batch)
        k = i if i < 4 else i - 4
        assert len(d[i]["boxes"]) == k % 3
        assert (d[i]["boxes"] == float(i)).all()
