"""pipeline.loader.sample: the frames of each view taken from the decoded union."""
import torch

from pipeline.loader.sample import _rows


def test_rows_are_a_view_when_evenly_spaced_and_equal_to_indexing_always():
    frames = torch.arange(60 * 2 * 3 * 3, dtype=torch.int32).reshape(60, 2, 3, 3).to(torch.uint8)
    cases = {  # rows -> whether they are evenly spaced (a view, no copy)
        (0,): True, (5, 6, 7, 8): True, (30, 32, 34, 36): True, tuple(range(60)): True,
        (1, 2, 4): False, (3, 3, 3): False, (9, 7, 5): False,
    }
    for rows, even in cases.items():
        got = _rows(frames, list(rows))
        assert torch.equal(got, frames[list(rows)]), rows
        assert (got.untyped_storage().data_ptr() == frames.untyped_storage().data_ptr()) == even, rows
