"""splits.json: the one writer and reader (pipeline.shard.splits), one behaviour for a
missing or broken listing, and no other module spelling the file name (tests/test_format_modules.py)."""
import pytest

from pipeline.errors import InputError
from pipeline.shard.splits import SPLITS, has_splits, read_splits, splits_path, write_splits

LISTING = {"dataset": "ucf101", "split": 1, "classes": ["a", "b"],
           "subsets": {"train": ["a/v1.avi"], "test": ["b/v2.avi"]}, "unused": [{"path": "c.avi", "status": "no list"}]}


def test_written_listing_reads_back(tmp_path):
    assert write_splits(tmp_path, LISTING) == splits_path(tmp_path) == tmp_path / "splits.json"
    assert has_splits(tmp_path) and read_splits(tmp_path) == LISTING


def test_missing_or_broken_listing_is_one_error_naming_the_path(tmp_path):
    assert not has_splits(tmp_path)
    with pytest.raises(InputError, match=f"{tmp_path / SPLITS}: no splits.json"):
        read_splits(tmp_path)
    for text, why in (("{", "unreadable"), ('{"subsets": []}', "'subsets' must map")):
        splits_path(tmp_path).write_text(text)
        with pytest.raises(InputError, match=why) as err:
            read_splits(tmp_path)
        assert str(splits_path(tmp_path)) in str(err.value)
