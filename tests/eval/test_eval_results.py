"""eval.json: the one writer and reader (pipeline.eval.results), one behaviour for a
missing or broken file, no other module spelling the file name (tests/test_format_modules.py)."""
import pytest

from pipeline.errors import InputError
from pipeline.eval.results import EVAL, eval_path, has_eval, read_eval, write_eval


def test_written_result_reads_back(tmp_path):
    result = {"knn_top1": 0.9, "random_init": {"knn_top1": 0.3}, "in_sample": False}
    assert write_eval(tmp_path, result) == eval_path(tmp_path) == tmp_path / "eval.json"
    assert has_eval(tmp_path) and read_eval(tmp_path) == result


def test_missing_or_broken_result_is_one_error_naming_the_path(tmp_path):
    assert not has_eval(tmp_path)
    with pytest.raises(InputError, match=f"{tmp_path / EVAL}: no eval.json"):
        read_eval(tmp_path)
    for text, why in (("{", "unreadable"), ("[0.9]", "not an evaluation result")):
        eval_path(tmp_path).write_text(text)
        with pytest.raises(InputError, match=why) as err:
            read_eval(tmp_path)
        assert str(eval_path(tmp_path)) in str(err.value)
