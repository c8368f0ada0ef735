"""One corrupt shard must not stop a non-resampled training loader (issue 26, item 5):
the worker that holds only that shard reads the rank's other shards and the skip is
counted; only a rank none of whose shards can be read stops, with one clear error.
Real shards, real DataLoader worker processes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards

SMALL = ["loader.workers=4", "loader.resampled=false", "loader.batch_size=2", "loader.epoch_batches=8",
         "loader.clip.frames=4", "loader.video.size=32", "loader.audio.seconds=0.5", "loader.shuffle_buffer=1"]


def loader_on(shards: Path) -> ClipLoader:
    from pipeline.train.config import TrainConfig
    cfg = load_config(TrainConfig, [], [f"out={shards.parent / 'run'}", f"loader.shards={shards}", *SMALL]).loader
    assert isinstance(cfg, LoaderConfig)
    return ClipLoader(cfg)


def corrupt(shards: Path, tmp_path: Path, n: int) -> Path:
    """A copy of the shard folder with its first ``n`` shards overwritten by garbage."""
    dest = tmp_path / "shards"
    shutil.copytree(shards, dest)
    tars = expand_shards(str(dest))
    assert len(tars) == 4
    for t in tars[:n]:
        Path(t).write_bytes(b"\x00not a tar\xff" * 100)
    return dest


def test_a_worker_whose_only_shard_is_corrupt_reads_the_others(synth_shards, tmp_path):
    loader = loader_on(corrupt(synth_shards, tmp_path, 1))
    batches = list(loader)
    assert len(batches) == 8  # the whole epoch, as the resampled loader gives
    assert loader.skipped_total >= 1 and sum(b["skipped"] for b in batches) == loader.skipped_total


def test_a_rank_with_no_readable_shard_stops_with_one_error(synth_shards, tmp_path):
    with pytest.raises(InputError, match=r"read no sample from any of its 4 shard"):
        list(loader_on(corrupt(synth_shards, tmp_path, 4)))
