"""An exported tower's config.json: the one writer and reader (pipeline.models.export_spec), one
behaviour for a missing spec, and no other module spelling the file name (tests/test_format_modules.py)."""
import json

import pytest

from pipeline.errors import InputError
from pipeline.models.export_spec import SPEC, has_spec, read_spec, spec_path, write_spec

SAMPLE = {"format": 1, "kind": "video", "name": "r3d_tiny", "args": {"widths": [4, 8, 8, 16]}, "out_dim": 16,
          "head": {"in_dim": 16, "hidden": 32, "out_dim": 8, "normalize": True}, "input": {"frames": 4}}


def test_written_spec_reads_back(tmp_path):
    (tmp_path / "video").mkdir()
    path = write_spec(tmp_path / "video", SAMPLE)
    assert path == spec_path(tmp_path / "video") == tmp_path / "video" / "config.json" and has_spec(tmp_path / "video")
    assert read_spec(tmp_path / "video") == SAMPLE


def test_missing_spec_is_one_error_naming_the_path(tmp_path):
    assert not has_spec(tmp_path)
    with pytest.raises(InputError, match=f"{tmp_path / SPEC}: not an exported backbone folder"):
        read_spec(tmp_path)


@pytest.mark.parametrize("text,why", [("{", "unreadable"), ("[]", "not an export config"), ("{\"kind\": \"x\"}", "unknown kind .x."),
                                      (json.dumps({**SAMPLE, "head": {"in_dim": 0}}), "'head' must give")])
def test_broken_spec_names_the_path(tmp_path, text, why):
    spec_path(tmp_path).write_text(text)
    with pytest.raises(InputError, match=why) as err:
        read_spec(tmp_path)
    assert str(spec_path(tmp_path)) in str(err.value)
