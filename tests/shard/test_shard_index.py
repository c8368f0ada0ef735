"""The shard index's one writer and one reader: what every stage reads back, and the one
behaviour for a missing or broken index (an InputError naming the path)."""
import pytest

from pipeline.errors import InputError
from pipeline.shard.index import build_index, class_names, has_index, index_path, read_index


def stats(shard, ok, failed=0):
    inputs = [{"path": f"{shard}-{i}.mp4", "status": "ok", "seconds": 2.0} for i in range(ok)]
    inputs += [{"path": f"{shard}-bad{i}.mp4", "status": "failed"} for i in range(failed)]
    return {"shard": shard, "samples": 3 * ok, "bytes": 1000 * ok, "seconds": 6.0 * ok, "inputs": inputs}


def test_written_index_reads_back_from_folder_pattern_and_tar(tmp_path):
    written = build_index(tmp_path, "ucf", ["b", "a"], [stats("ucf-000000", 2), stats("ucf-000001", 1, 1)], {"fps": 8})
    assert index_path(tmp_path) == tmp_path / "index.json" and has_index(tmp_path)
    for shards in (tmp_path, str(tmp_path / "ucf-{000000..000001}.tar"), str(tmp_path / "ucf-*.tar"),
                   str(tmp_path / "ucf-000000.tar")):
        assert read_index(shards) == written
        assert class_names(shards) == ["b", "a"]  # label-id order, as written
    assert written["totals"]["videos"] == 3 and written["totals"]["failed"] == 1


def test_a_missing_folder_inside_a_shard_folder_has_no_index(tmp_path):
    """A subset folder not written yet (or mistyped) is not read as its parent's index."""
    build_index(tmp_path, "x", ["a"], [stats("x-000000", 1)], {})
    assert index_path(tmp_path / "train") == tmp_path / "train" / "index.json"
    assert not has_index(tmp_path / "train") and has_index(tmp_path / "x-{000000..000001}.tar")


def test_unlabelled_corpus_has_no_classes(tmp_path):
    build_index(tmp_path, "x", [], [stats("x-000000", 1)], {})
    assert class_names(tmp_path) == []


def test_missing_index_is_one_error_naming_the_path(tmp_path):
    assert not has_index(tmp_path)
    for read in (read_index, class_names):
        with pytest.raises(InputError, match=f"{tmp_path / 'index.json'}: no index.json"):
            read(tmp_path)


@pytest.mark.parametrize("text,why", [("", "unreadable"), ("{\"classes\": [1, 2]}", "'classes' must be a list of names"),
                                      ("[1]", "not a shard index"), ("\xff\xfe", "unreadable")])
def test_broken_index_names_the_path_and_the_fix(tmp_path, text, why):
    (tmp_path / "index.json").write_text(text, encoding="latin-1")
    with pytest.raises(InputError, match=why) as err:
        class_names(tmp_path)
    assert str(tmp_path / "index.json") in str(err.value)
