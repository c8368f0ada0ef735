"""splits.json: the one writer and reader (pipeline.shard.splits), one behaviour for a
missing or broken listing, and no other module spelling the file name."""
import ast
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.shard.splits import SPLITS, has_splits, read_splits, splits_path, write_splits

ROOT = Path(__file__).resolve().parents[2]
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


def test_one_module_names_the_listing_file():
    spelled = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "jobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.rstrip("/").split("/")[-1] == SPLITS:
                spelled.append(str(path.relative_to(ROOT)))
    assert spelled == ["pipeline/shard/splits.py"]
