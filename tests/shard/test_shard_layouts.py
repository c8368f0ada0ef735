"""Dataset layouts read as distributed (UCF101, HMDB51, ESC-50, generic folders), on fakes
with the real file names, containers and split-file formats (tests/fake_layouts.py)."""
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from fake_layouts import fake_esc50, fake_generic, fake_hmdb51, fake_ucf101
from pipeline.cli import build_config
from pipeline.errors import ConfigError, InputError
from pipeline.io.wav import pcm_wav
from pipeline.shard.driver import incomplete_slices
from pipeline.stages import STAGES

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = ["clip_seconds=1.5", "short_side=64", "videos_per_shard=4", "workers=2"]


def shard(*overrides: str) -> dict:
    stage = STAGES["shard"]
    return stage.load_target()(build_config(stage, [], list(overrides)))


def samples(folder: Path) -> list[dict]:
    return list(wds.WebDataset([str(p) for p in sorted(folder.glob("*.tar"))], shardshuffle=False))


def index(folder: Path) -> dict:
    return json.loads((folder / "index.json").read_text())


def check_video_ids(found: list[dict]) -> dict[str, set[str]]:
    """Every sample's video_id is its key without the clip index; one id per source file."""
    ids = defaultdict(set)
    for s in found:
        meta = json.loads(s["json"])
        assert meta["video_id"] == s["__key__"].rsplit("_", 1)[0] == meta["key"].rsplit("_", 1)[0]
        ids[meta["source"]].add(meta["video_id"])
    assert all(len(v) == 1 for v in ids.values())
    assert len({next(iter(v)) for v in ids.values()}) == len(ids)
    return ids


@pytest.fixture(scope="module")
def ucf(synth_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf")
    fake = fake_ucf101(root, synth_corpus)
    gone = fake.splits[2]["test"][0]
    (root / "UCF-101" / gone).unlink()                 # listed, missing on disk
    extra = "Extra/v_Extra_g01_c01.avi"                # on disk, in no list
    (root / "UCF-101" / extra).parent.mkdir()
    shutil.copy(root / "UCF-101" / fake.splits[2]["train"][0], root / "UCF-101" / extra)
    out = tmp_path_factory.mktemp("ucf_shards")
    return fake, gone, extra, out, shard(f"input={root}", f"output={out}", "dataset=ucf101",
                                         "split=2", *SMALL)


def test_ucf101_split_into_train_and_test(ucf):
    fake, gone, extra, out, result = ucf
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["test", "train"]
    assert result["index"] is None and set(result["subsets"]) == {"train", "test"}
    listing = json.loads((out / "splits.json").read_text())
    assert listing["dataset"] == "ucf101" and listing["split"] == 2
    assert listing["unused"] == [{"path": extra, "status": "skipped", "reason": "not_in_split",
                                  "clips": 0, "seconds": 0.0, "detail": "in neither list of split 2"}]
    for subset in ("train", "test"):
        idx = index(out / subset)
        assert idx["classes"] == fake.classes  # classInd.txt order, not sorted
        assert sorted(e["path"] for e in idx["inputs"]) == fake.splits[2][subset] == listing["subsets"][subset]
        assert (out / subset / "config.yaml").is_file()
        by_path = {e["path"]: e for e in idx["inputs"]}
        for path, e in by_path.items():
            if path == gone:
                assert (e["status"], e["reason"]) == ("failed", "missing")
            else:
                assert e["status"] == "ok" and e["clips"] == 2, e
                assert (e.get("note") == "no_audio_stream") == (path in fake.silent)
        found = samples(out / subset)
        ids = check_video_ids(found)
        assert set(ids) == {p for p in by_path if p != gone}
        for s in found:
            meta = json.loads(s["json"])
            assert int(s["cls"]) == fake.classes.index(fake.files[meta["source"]]) == fake.classes.index(meta["label"])
            assert ("wav" in s) == meta["has_audio"] == (meta["source"] not in fake.silent)
            assert meta["has_video"] and "mp4" in s
    assert result["failed"] == 1 and result["skipped"] == 1
    assert result["inputs"] == len(fake.files) + 1  # every input and the extra file, one status each


def test_ucf101_slices_write_the_same_shard_sets(ucf, tmp_path):
    fake, _, _, ref, _ = ucf
    out = tmp_path / "sliced"
    common = [f"input={fake.root}", f"output={out}", "dataset=ucf101", "split=2", *SMALL]
    first = shard(*common, "slice=0/2")
    stage = STAGES["shard"]
    assert incomplete_slices(build_config(stage, [], common), 2) == [1]
    assert not first["complete"] and not (out / "train" / "index.json").exists()
    assert shard(*common, "slice=1/2")["complete"]
    for subset in ("train", "test"):
        names = sorted(p.name for p in (ref / subset).glob("*.tar"))
        assert names == sorted(p.name for p in (out / subset).glob("*.tar"))
        for name in names + ["index.json"]:
            assert (ref / subset / name).read_bytes() == (out / subset / name).read_bytes()


def test_hmdb51_train_test_and_unused(synth_corpus, tmp_path):
    fake = fake_hmdb51(tmp_path / "hmdb", synth_corpus)
    out = tmp_path / "out"
    result = shard(f"input={fake.root}", f"output={out}", "dataset=hmdb51", *SMALL)
    listing = json.loads((out / "splits.json").read_text())
    assert listing["split"] == 1
    assert sorted(e["path"] for e in listing["unused"]) == fake.splits[1]["unused"]
    assert {e["reason"] for e in listing["unused"]} == {"unused_in_split"}
    for subset in ("train", "test"):
        idx = index(out / subset)
        assert idx["classes"] == sorted(fake.classes)
        assert sorted(e["path"] for e in idx["inputs"]) == fake.splits[1][subset]
        assert all(e["status"] == "ok" for e in idx["inputs"])
        found = samples(out / subset)
        check_video_ids(found)
        silent = [s for s in found if json.loads(s["json"])["source"] in fake.silent]
        assert silent and all("wav" not in s and "mp4" in s for s in silent)
    assert result["skipped"] == len(fake.splits[1]["unused"])


def test_hmdb51_videos_one_folder_down(synth_corpus, tmp_path):
    """Issue 26, item 10: the class folders in INPUT/videos/, the split lists beside them.
    Read as a plain layout, nothing listed is found: one error, before anything is
    written, saying where the names were looked for and where the videos are; the
    split lists' folder is a setting of its own."""
    fake = fake_hmdb51(tmp_path / "hmdb", synth_corpus)
    root, lists = fake.root, fake.root / "testTrainMulti_7030_splits"
    (root / "videos").mkdir()
    for cls in sorted(set(fake.files.values())):
        (root / cls).rename(root / "videos" / cls)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        shard(f"input={root}", f"output={out}", "dataset=hmdb51", *SMALL)
    message = str(err.value)
    assert "\n" not in message and not out.exists()
    assert f"none of the {len(fake.files)} videos named in {lists} is under {root}" in message
    assert f"set input={root / 'videos'} split_lists={lists}" in message, message
    result = shard(f"input={root / 'videos'}", f"split_lists={lists}", f"output={out}",
                   "dataset=hmdb51", *SMALL)
    assert result["complete"] and result["failed"] == 0
    for subset in ("train", "test"):
        idx = index(out / subset)
        assert sorted(e["path"] for e in idx["inputs"]) == fake.splits[1][subset]
        assert all(e["status"] == "ok" for e in idx["inputs"])
    with pytest.raises(InputError, match="split_lists=.*nowhere: no such folder"):
        shard(f"input={root / 'videos'}", f"split_lists={tmp_path / 'nowhere'}",
              f"output={tmp_path / 'o2'}", "dataset=hmdb51")


def test_ucf101_split_lists_in_their_own_folder(ucf, tmp_path):
    """The UCF-101/ folder as input and the lists named apart: the same shards, byte for
    byte; the lists' folder with input= one level too high is the one-line error."""
    fake, _, _, ref, _ = ucf
    lists = fake.root / "ucfTrainTestlist"
    with pytest.raises(InputError) as err:
        shard(f"input={fake.root}", f"split_lists={lists}", f"output={tmp_path / 'x'}",
              "dataset=ucf101", "split=2", *SMALL)
    assert f"set input={fake.root / 'UCF-101'} split_lists={lists}" in str(err.value)
    assert not (tmp_path / "x").exists()
    out = tmp_path / "out"
    shard(f"input={fake.root / 'UCF-101'}", f"split_lists={lists}", f"output={out}",
          "dataset=ucf101", "split=2", *SMALL)
    for subset in ("train", "test"):
        names = sorted(p.name for p in (ref / subset).glob("*.tar"))
        assert names and names == sorted(p.name for p in (out / subset).glob("*.tar"))
        for name in names + ["index.json"]:
            assert (ref / subset / name).read_bytes() == (out / subset / name).read_bytes()


def test_esc50_folds_are_audio_only_shard_sets(tmp_path):
    fake = fake_esc50(tmp_path / "esc")
    audio = fake.root / "audio"
    silent, gone = fake.splits[1]["fold3"][0], fake.splits[1]["fold4"][0]
    (audio / silent).write_bytes(pcm_wav(bytes(2 * 44100 * 5), 44100))
    (audio / gone).unlink()
    shutil.copy(audio / fake.splits[1]["fold1"][0], audio / "9-1-A-0.wav")  # not in esc50.csv
    out = tmp_path / "out"
    result = shard(f"input={fake.root}", f"output={out}", "dataset=esc50", "workers=2")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"fold{k}" for k in range(1, 6)]
    statuses = {}
    for k in range(1, 6):
        folder = out / f"fold{k}"
        idx = index(folder)
        assert idx["classes"] == list(fake.classes)  # ordered by target
        statuses.update({e["path"]: (e["status"], e["reason"]) for e in idx["inputs"]})
        found = samples(folder)
        check_video_ids(found)
        for s in found:
            meta = json.loads(s["json"])
            assert {k for k in s if not k.startswith("__")} == {"wav", "json", "cls"}  # no mp4
            assert not meta["has_video"] and meta["duration"] == 5.0 and meta["clip_index"] == 0
            assert int(s["cls"]) == fake.classes.index(meta["label"]) == int(meta["source"][:-4].split("-")[3])
            assert meta["extra"]["take"] == meta["source"].split("-")[2]
            pcm = np.frombuffer(s["wav"][44:], "<i2")
            assert len(pcm) == 5 * 16000 and np.abs(pcm).max() > 1000
    assert statuses[silent] == ("skipped", "silent_audio")
    assert statuses[gone] == ("failed", "missing")
    assert sum(v == ("ok", None) for v in statuses.values()) == len(fake.files) - 2
    assert result["skipped"] == 2 and result["failed"] == 1  # silent + unlisted; missing
    assert json.loads((out / "splits.json").read_text())["unused"][0]["path"] == "9-1-A-0.wav"


def test_folder_gets_a_held_out_split_by_default(synth_corpus, tmp_path):
    fake = fake_generic(tmp_path / "videos", synth_corpus)
    out = tmp_path / "out"
    shard(f"input={fake.root}", f"output={out}", *SMALL)
    listing = json.loads((out / "splits.json").read_text())
    assert (listing["holdout"], listing["holdout_seed"], listing["stratified_by_label"]) == (0.2, 0, True)
    test = listing["subsets"]["test"]
    per_class = defaultdict(list)
    for p in fake.files:
        per_class[fake.files[p]].append(p)
    for cls, paths in per_class.items():  # stratified: round(0.2 n) of each class held out
        assert len([p for p in test if p in paths]) == int(0.2 * len(paths) + 0.5)
    train_ids = check_video_ids(samples(out / "train"))
    test_ids = check_video_ids(samples(out / "test"))
    assert sorted(test_ids) == sorted(test) and not set(train_ids) & set(test_ids)
    assert index(out / "train")["classes"] == index(out / "test")["classes"] == fake.classes
    # holdout=0: one shard set in output/, as before
    single = tmp_path / "single"
    result = shard(f"input={fake.root}", f"output={single}", "holdout=0", *SMALL)
    assert result["index"] == str(single / "index.json") and not (single / "splits.json").exists()


def test_folder_splits_csv_declares_the_subsets(synth_corpus, tmp_path):
    fake = fake_generic(tmp_path / "videos", synth_corpus,
                        split_of=lambda p: ["train", "val", "test"][int(Path(p).stem) % 3])
    (fake.root / "splits.csv").write_text(
        "\n".join((fake.root / "splits.csv").read_text().splitlines()[:-1]) + "\nnope/gone.mp4,val\n")
    unlisted = sorted(fake.files)[-1]
    out = tmp_path / "out"
    result = shard(f"input={fake.root}", f"output={out}", *SMALL)
    listing = json.loads((out / "splits.json").read_text())
    assert set(listing["subsets"]) == {"train", "val", "test"}
    assert [e["path"] for e in listing["unused"]] == [unlisted]
    val = {e["path"]: e["status"] for e in index(out / "val")["inputs"]}
    assert val["nope/gone.mp4"] == "failed" and result["failed"] == 1
    with pytest.raises(ConfigError, match="splits.csv declares the split"):
        shard(f"input={fake.root}", f"output={tmp_path / 'x'}", "holdout=0.3", *SMALL)


def test_holdout_split_is_stratified_grouped_and_stable():
    from pipeline.shard.corpus import InputItem
    from pipeline.shard.layouts.holdout import holdout_split

    def items(n_per_class):
        out = []
        for label, n in n_per_class.items():
            for i in range(n):
                path = f"{label}/{i:03d}.mp4"
                for seg in range(3):  # three segments of one file, as a manifest may list them
                    out.append(InputItem(path=path, abspath=path, identity=f"{path}@{seg}", label=label,
                                         start=float(seg), end=float(seg + 1)))
        return out
    base = items({"a": 20, "b": 10, "c": 1})
    split = holdout_split(base, 0.2, seed=0)
    test_files = {it.path for it in split["test"]}
    assert not test_files & {it.path for it in split["train"]}  # segments of a file stay together
    assert len(split["test"]) == 3 * len(test_files)
    assert sorted(p.split("/")[0] for p in test_files).count("a") == 4
    assert sorted(p.split("/")[0] for p in test_files).count("b") == 2 and "c/000.mp4" not in test_files
    assert holdout_split(base, 0.2, seed=0) == split                    # fixed by the seed
    assert {it.path for it in holdout_split(base, 0.2, seed=1)["test"]} != test_files
    grown = holdout_split(items({"a": 25, "b": 10, "c": 1}), 0.2, seed=0)
    moved = ({it.path for it in grown["test"]} & {it.path for it in base}) ^ test_files
    assert len(moved) <= 2  # 5 files added to class a: at most a couple of old ones change side
