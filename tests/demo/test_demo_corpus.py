"""The demo on a real folder evaluates on held-out files by default (never on the clips it
trained on unless holdout=0), and on a folder's declared train/test split when it has one."""
import json
from pathlib import Path

import pytest
import webdataset as wds

from fake_layouts import fake_generic
from pipeline.config import load_config
from pipeline.demo.stage import Demo, DemoConfig
from pipeline.errors import InputError


def sources(folder: str) -> set[str]:
    urls = [str(p) for p in sorted(Path(folder).glob("*.tar"))]
    return {json.loads(s["json"])["source"] for s in wds.WebDataset(urls, shardshuffle=False)}


def demo(out: Path, corpus: Path, *extra: str) -> Demo:
    return Demo(load_config(DemoConfig, [], [f"out={out}", f"corpus={corpus}", *extra]))


def test_real_folder_is_split_before_evaluation(synth_corpus, tmp_path):
    fake = fake_generic(tmp_path / "videos", synth_corpus)
    train, test = demo(tmp_path / "run", fake.root).corpus_shards(str(fake.root), 64, "shards")
    assert (Path(train).name, Path(test).name) == ("train", "test")
    assert sources(train) | sources(test) == set(fake.files) and not sources(train) & sources(test)
    listing = json.loads((tmp_path / "run" / "shards" / "splits.json").read_text())
    assert sorted(listing["subsets"]["test"]) == sorted(sources(test)) and listing["holdout"] == 0.2
    same = demo(tmp_path / "run0", fake.root, "holdout=0").corpus_shards(str(fake.root), 64, "shards")
    assert same[0] == same[1] == str(tmp_path / "run0" / "shards")


def test_declared_split_needs_train_and_test(synth_corpus, tmp_path):
    fake = fake_generic(tmp_path / "videos", synth_corpus, split_of=lambda p: "a" if p < "m" else "b")
    with pytest.raises(InputError, match="'train' and a 'test' split"):
        demo(tmp_path / "run", fake.root).corpus_shards(str(fake.root), 64, "shards")
