"""Shared fixtures: a small synthetic corpus and its real shards, made once per session."""
import json
from pathlib import Path

import pytest

from pipeline.config import load_config

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    from pipeline.synth.stage import SynthConfig, run
    out = tmp_path_factory.mktemp("synth_corpus")
    run(load_config(SynthConfig, [], [f"out={out}", "n_videos=24", "n_classes=4", "seconds=3",
                                      "size=64", "seed=11", "workers=2"]))
    return out


@pytest.fixture(scope="session")
def synth_shards(synth_corpus, tmp_path_factory) -> Path:
    """The synthetic corpus sharded by the real shard stage (6 videos per shard)."""
    from pipeline.stages import STAGES, find
    from pipeline.cli import build_config
    stage = find("shard", STAGES)
    out = tmp_path_factory.mktemp("synth_shards")
    cfg = build_config(stage, [], [f"input={synth_corpus / 'manifest.jsonl'}", f"output={out}",
                                   "videos_per_shard=6", "clip_seconds=3", "short_side=64",
                                   "workers=2"])
    stage.load_target()(cfg)
    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["clips"] == 24
    return out


@pytest.fixture(scope="session")
def synth_sample(synth_shards) -> dict:
    """The first sample (by key) of the first synthetic shard, as raw tar members."""
    import tarfile
    from pipeline.loader.loader import expand_shards
    members: dict[str, dict] = {}
    with tarfile.open(expand_shards(str(synth_shards))[0]) as tf:
        for m in tf.getmembers():
            key, ext = m.name.split(".", 1)
            members.setdefault(key, {})[ext] = tf.extractfile(m).read()
    key = sorted(members)[0]
    return {"__key__": key, **members[key]}
