"""Pseudo labels as side files beside real shards: a shard's file appears once its last
clip was labelled, the table reads any (key, frame) back, and bad side files are one
clear error naming the file (and line)."""
import json
import tarfile

import numpy as np
import pytest

from pipeline.detect.pseudo_labels import PseudoLabels, SideFileWriter, side_names
from pipeline.errors import InputError
from pipeline.loader.loader import expand_shards


def _keys(shard: str) -> list[str]:
    with tarfile.open(shard) as tf:
        return sorted({m.name.partition(".")[0] for m in tf})


def test_side_files_are_written_per_shard_and_read_back(synth_shards, tmp_path):
    shards = expand_shards(str(synth_shards))
    folder = tmp_path / "pseudo"
    writer = SideFileWriter(folder, shards)
    first = _keys(shards[0])
    for i, key in enumerate(first):
        assert not (folder / "shard-000000.jsonl").exists()  # not before its last clip
        writer.add_clip(key, [{"key": key, "frame": f, "box": [0.1 * f, 0.2, 0.5, 0.6], "cluster": i % 3}
                              for f in range(2)])
    assert (folder / "shard-000000.jsonl").exists() and not (folder / "shard-000001.jsonl").exists()
    assert writer.close() == 2 * len(first)
    assert sorted(p.name for p in folder.iterdir()) == side_names(shards)  # the rest: empty files
    table = PseudoLabels(folder, shards)
    boxes, cluster = table.get(first[2], 1)
    assert np.allclose(boxes, [[0.1, 0.2, 0.5, 0.6]]) and cluster == 2
    boxes, cluster = table.get(_keys(shards[1])[0], 0)  # unlabelled: background only
    assert boxes.shape == (0, 4) and cluster == 0
    with pytest.raises(InputError, match="in none of the shards"):
        SideFileWriter(tmp_path / "other", shards).add_clip("no-such-clip", [])


def test_missing_or_broken_side_files_name_the_file(synth_shards, tmp_path):
    shards = expand_shards(str(synth_shards))
    with pytest.raises(InputError, match="shard-000000.jsonl: missing .*'pseudo' step"):
        PseudoLabels(tmp_path, shards)
    for name in side_names(shards):
        (tmp_path / name).write_text("")
    (tmp_path / "shard-000002.jsonl").write_text(json.dumps({"key": "a", "frame": 0, "box": [0, 0, 1, 1],
                                                             "cluster": 1}) + "\n{broken\n")
    with pytest.raises(InputError, match="shard-000002.jsonl:2: not a pseudo-label row"):
        PseudoLabels(tmp_path, shards)
