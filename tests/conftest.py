"""Shared fixtures: a small synthetic corpus and its real shards, made once per session;
and which tests are ``slow`` (left out of ``make test-quick``, see docs/contributing.md)."""
import json
from pathlib import Path

import pytest

from shard_util import TINY_MODEL, shard_manifest
from pipeline.config import load_config

DATA = Path(__file__).parent / "data"

# What makes a test slow, kept in one place so `make test-quick` stays under 3 minutes on
# two cores: it needs a real corpus sharded or a model trained (the session fixtures
# below and the module fixtures built the same way), or the whole module runs stages,
# subprocesses, a wheel build or real media through the encoders. `slurm` and
# `distributed` tests are marked where they are defined.
SLOW_FIXTURES = {"synth_corpus", "synth_shards", "split_root", "tiny_export", "synth_sample", "esc50_root",
                 "real_shard_videos"}
SLOW_MODULES = {"test_bench_scale", "test_compiler_free", "test_demo_corpus", "test_demo_report",
                "test_detect_stage", "test_export_eval", "test_finetune", "test_hostile_media",
                "test_shard", "test_shard_broken", "test_shard_encoders", "test_shard_layouts",
                "test_shard_resume", "test_synth", "test_wheel"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in SLOW_MODULES or SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    from pipeline.synth.stage import SynthConfig, run
    out = tmp_path_factory.mktemp("synth_corpus")
    run(load_config(SynthConfig, [], [f"out={out}", "n_videos=24", "n_classes=4", "seconds=3",
                                      "size=64", "seed=11", "workers=2", "difficulty=easy"]))
    return out


@pytest.fixture(scope="session")
def synth_shards(synth_corpus, tmp_path_factory) -> Path:
    """The synthetic corpus sharded by the real shard stage (6 videos per shard)."""
    from pipeline.stages import STAGES
    from pipeline.cli import build_config
    stage = STAGES["shard"]
    out = tmp_path_factory.mktemp("synth_shards")
    cfg = build_config(stage, [], [f"input={synth_corpus / 'manifest.jsonl'}", f"output={out}",
                                   "videos_per_shard=6", "clip_seconds=3", "short_side=64",
                                   "workers=2"])
    stage.load_target()(cfg)
    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["clips"] == 24
    return out


@pytest.fixture(scope="session")
def split_root(synth_corpus, tmp_path_factory) -> Path:
    """One UCF101-style split as the shard stage lays it out: train/ (16 videos) and
    test/ (8 videos), each a shard set; clips of 1.5 s so most videos give 2 samples."""
    root = tmp_path_factory.mktemp("split")
    rows = (synth_corpus / "manifest.jsonl").read_text().splitlines()
    shard_manifest(rows[:16], synth_corpus, "split_train", root / "train", clip_seconds=1.5)
    shard_manifest(rows[16:], synth_corpus, "split_test", root / "test", clip_seconds=1.5)
    return root


@pytest.fixture(scope="session")
def tiny_export(synth_shards, tmp_path_factory) -> Path:
    """A GDT run of 3 steps with tiny backbones, exported."""
    from pipeline.export.stage import export_run
    from pipeline.train.config import TrainConfig
    from pipeline.train.engine import train
    run = tmp_path_factory.mktemp("tiny_gdt")
    cfg = load_config(TrainConfig, [], [f"out={run}", "steps=3", f"loader.shards={synth_shards}", *TINY_MODEL,
                                        "loader.batch_size=6", "loader.workers=0", "loader.epoch_batches=4",
                                        "loader.clip.frames=4", "loader.video.size=32", "loader.audio.seconds=0.5",
                                        "gdt.reversal=off", "gdt.shift=off", "loader.clip.reverse=false",
                                        "tensorboard=false"])
    assert train(cfg)["status"] == "done"
    export_run(run, run / "export")
    return run / "export"


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


@pytest.fixture(scope="session")
def real_shard_videos(tmp_path_factory) -> list[bytes]:
    """Real media of tests/data through the real shard stage (h264 mp4 at 25 fps); the
    MPEG program streams (.mpg) among them, which no backend reads exactly as they are."""
    import webdataset as wds
    from pipeline.cli import build_config
    from pipeline.stages import STAGES
    corpus, out = tmp_path_factory.mktemp("real_corpus"), tmp_path_factory.mktemp("real_shards")
    for name in ("chimpanzee.mpg", "city_no_audio.mpg", "face_hevc.mov", "lego_toy.mp4"):
        (corpus / name).write_bytes((DATA / name).read_bytes())
    stage = STAGES["shard"]
    stage.load_target()(build_config(stage, [], [f"input={corpus}", f"output={out}", "require_audio=false", "holdout=0",
                                                 "clip_seconds=2", "short_side=64", "workers=2"]))
    return [s["mp4"] for s in wds.WebDataset([str(p) for p in sorted(out.glob("*.tar"))], shardshuffle=False)]
