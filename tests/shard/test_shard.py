"""The shard stage on real media: statuses, the sample format contract, manifests, slices."""
import io
import json
import shutil
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from pipeline.cli import build_config, main
from pipeline.config import flat_fields
from pipeline.shard.keys import is_valid_key
from pipeline.shard.driver import ShardConfig
from pipeline.errors import InputError
from pipeline.stages import STAGES

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = ["clip_seconds=2", "short_side=64", "videos_per_shard=3", "holdout=0"]
LAYOUT = {  # corpus path -> file in tests/data; the folder is the label
    "nature/rocket_launch.webm": "rocket_launch.webm",
    "nature/lego_toy.mp4": "lego_toy.mp4",          # same name in two folders
    "toys/lego_toy.mp4": "lego_toy.mp4",
    "toys/my.lego v2 é.mp4": "lego_toy.mp4",         # dots, space, non-ASCII
    "animals/chimpanzee.mpg": "chimpanzee.mpg",
    "city/city_no_audio.mpg": "city_no_audio.mpg",
    "nature/earth_silent_audio.mp4": "earth_silent_audio.mp4",
    "film/bunny_6ch.mp4": "bunny_6ch.mp4",
    "film/face_hevc.mov": "face_hevc.mov",
    "park_short.mp4": "park_short.mp4",              # top level: no label
}


def shard(*overrides: str) -> dict:
    stage = STAGES["shard"]
    return stage.load_target()(build_config(stage, [], list(overrides)))


def samples(out: Path) -> list[dict]:
    urls = [str(p) for p in sorted(out.glob("*.tar"))]
    return list(wds.WebDataset(urls, shardshuffle=False))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for rel, src in LAYOUT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / src, root / rel)
    return root


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    result = shard(f"input={corpus}", f"output={out}", "require_audio=false", "workers=2", *SMALL)
    return out, result


def test_every_input_gets_one_status(run):
    out, result = run
    index = json.loads((out / "index.json").read_text())
    by_path = {e["path"]: e for e in index["inputs"]}
    assert sorted(by_path) == sorted(LAYOUT) and len(index["inputs"]) == len(LAYOUT)
    assert (by_path["park_short.mp4"]["status"], by_path["park_short.mp4"]["reason"]) == ("skipped", "too_short")
    assert by_path["nature/earth_silent_audio.mp4"]["note"] == "silent_audio"
    assert by_path["city/city_no_audio.mpg"]["note"] == "no_audio_stream"
    assert all(e["status"] == "ok" for p, e in by_path.items() if p != "park_short.mp4")
    assert index["classes"] == ["animals", "city", "film", "nature", "toys"]
    assert index["totals"]["videos"] == 9 and index["totals"]["inputs"] == 10
    assert index["totals"]["clips"] == sum(s["samples"] for s in index["shards"]) == result["clips"]
    assert [s["name"] for s in index["shards"]] == [f"shard-{i:06d}.tar" for i in range(4)]
    assert abs(index["totals"]["hours"] * 3600 - sum(e["seconds"] for e in index["inputs"])) < 0.01
    for s in index["shards"]:  # each stats file agrees with its tar
        stats = json.loads((out / s["name"].replace(".tar", ".stats.json")).read_text())
        assert stats["samples"] == s["samples"] and stats["bytes"] == (out / s["name"]).stat().st_size
    assert (out / "config.yaml").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_shards_round_trip_through_webdataset(run):
    out, _ = run
    index = json.loads((out / "index.json").read_text())
    got = samples(out)
    assert len(got) == index["totals"]["clips"]
    assert len({s["__key__"] for s in got}) == len(got)
    for s in got:
        meta = json.loads(s["json"])
        assert is_valid_key(s["__key__"]) and meta["key"] == s["__key__"]
        assert set(s) - {"__key__", "__url__", "__local_path__"} == (
            {"mp4", "json"} | ({"wav"} if meta["has_audio"] else set())
            | ({"cls"} if meta["label"] else set()))
        assert meta["label"] is None or index["classes"][int(s["cls"])] == meta["label"]
        assert meta["fps"] == 25 and min(meta["width"], meta["height"]) == 64
        assert meta["width"] % 2 == 0 and meta["height"] % 2 == 0
        assert len(meta["source_sha1"]) == 40 and meta["duration"] == meta["n_frames"] / 25
        with av.open(io.BytesIO(s["mp4"])) as c:
            assert not c.streams.audio and len(c.streams.video) == 1
            vs = c.streams.video[0]
            assert vs.codec_context.name == "h264" and vs.average_rate == 25
            keys = [i for i, p in enumerate(c.demux(vs)) if p.size and p.is_keyframe]
        with av.open(io.BytesIO(s["mp4"])) as c:
            frames = [f for f in c.decode(video=0)]
        assert len(frames) == meta["n_frames"]
        assert (frames[0].width, frames[0].height) == (meta["width"], meta["height"])
        assert frames[0].format.name == "yuv420p"
        assert keys[0] == 0 and max(np.diff(keys + [meta["n_frames"]])) <= 25  # GOP <= fps
        if meta["has_audio"]:
            with wave.open(io.BytesIO(s["wav"])) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
                assert w.getnframes() == meta["n_frames"] * 640  # exactly the clip's window


def test_audio_content_and_alignment(run):
    out, _ = run
    metas = {(json.loads(s["json"])["source"], json.loads(s["json"])["clip_index"]): s for s in samples(out)}

    def pcm(source, clip):
        with wave.open(io.BytesIO(metas[(source, clip)]["wav"])) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2")
    # face_hevc's audio starts 2.4 s into the file: silence is padded in front, not shifted
    first, second = pcm("film/face_hevc.mov", 0), pcm("film/face_hevc.mov", 1)
    assert not first.any()
    onset = np.flatnonzero(second)[0] / 16000 + 2.0
    assert 2.3 < onset < 2.5
    assert json.loads(metas[("film/face_hevc.mov", 0)]["json"])["audio_rms"] == 0.0
    # the 6-channel track is down-mixed to an audible mono track
    bunny = json.loads(metas[("film/bunny_6ch.mp4", 0)]["json"])
    assert bunny["has_audio"] and bunny["audio_rms"] > 0.002  # source channels: 0.003-0.016
    # silent audio with require_audio=false: video-only clips
    earth = json.loads(metas[("nature/earth_silent_audio.mp4", 0)]["json"])
    assert not earth["has_audio"] and earth["audio_rate"] is None


def test_manifest_captions_labels_segments_boxes(tmp_path):
    for name in ("lego_toy.mp4", "chimpanzee.mpg"):
        shutil.copy(DATA / name, tmp_path / name)
    boxes = [[round(t * 0.1, 4), 0.1, 0.2, 0.5, 0.6] for t in range(55)]
    rows = [{"path": "lego_toy.mp4", "caption": "a lego toy", "label": "toy", "boxes": boxes,
             "source_id": "yt:123"},
            {"path": "lego_toy.mp4", "start": 1.0, "end": 4.0, "label": "toy", "boxes": boxes},
            {"path": "chimpanzee.mpg", "caption": "un chimpanzé", "label": "animal"},
            {"path": "gone/missing.mp4", "label": "toy"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    shard(f"input={tmp_path / 'm.jsonl'}", f"output={out}", "workers=1", *SMALL)
    index = json.loads((out / "index.json").read_text())
    assert index["classes"] == ["animal", "toy"]
    status = {(e["path"], e["clips"]): (e["status"], e["reason"]) for e in index["inputs"]}
    assert status[("gone/missing.mp4", 0)] == ("failed", "missing")
    got = {json.loads(s["json"])["key"]: s for s in samples(out)}
    metas = [json.loads(s["json"]) for s in got.values()]
    full = sorted((m for m in metas if m["source"] == "lego_toy.mp4" and m["caption"]),
                  key=lambda m: m["clip_index"])
    seg = sorted((m for m in metas if m["source"] == "lego_toy.mp4" and not m["caption"]),
                 key=lambda m: m["clip_index"])
    assert [m["start"] for m in full] == [0.0, 2.0, 4.0]
    assert [(m["start"], m["duration"]) for m in seg] == [(1.0, 2.0), (3.0, 1.0)]  # 3 s segment
    assert {m["key"][:-5] for m in full}.isdisjoint({m["key"][:-5] for m in seg})
    assert full[0]["extra"] == {"source_id": "yt:123"} and "extra" not in seg[0]
    assert got[full[0]["key"]]["txt"] == b"a lego toy" and int(got[full[0]["key"]]["cls"]) == 1
    chimp = next(m for m in metas if m["source"] == "chimpanzee.mpg")
    assert got[chimp["key"]]["txt"].decode() == "un chimpanzé" and int(got[chimp["key"]]["cls"]) == 0
    assert "boxes" not in chimp
    # boxes: only those inside the clip, with time relative to the clip start
    assert full[1]["boxes"][0] == [0.0, 0.1, 0.2, 0.5, 0.6] and len(full[1]["boxes"]) == 20
    assert seg[0]["boxes"][2] == [0.2, 0.1, 0.2, 0.5, 0.6]  # source t = 1.2 s
    assert all(0 <= b[0] < m["duration"] for m in full + seg for b in m["boxes"])


def test_overlapping_clips_share_exact_audio_and_matching_frames(tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copy(DATA / "lego_toy.mp4", tmp_path / "in" / "lego_toy.mp4")
    out = tmp_path / "out"
    shard(f"input={tmp_path / 'in'}", f"output={out}", "workers=1", "clip_seconds=2",
          "stride_seconds=1", "short_side=64", "crf=12", "holdout=0")  # 138 frames: a clip every 25, 50 long
    got = sorted(samples(out), key=lambda s: json.loads(s["json"])["clip_index"])
    metas = [json.loads(s["json"]) for s in got]
    assert [(m["start"], m["n_frames"]) for m in metas] == [(0.0, 50), (1.0, 50), (2.0, 50),
                                                            (3.0, 50), (4.0, 38)]

    def pcm(s):
        with wave.open(io.BytesIO(s["wav"])) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2")

    def frames(s):
        with av.open(io.BytesIO(s["mp4"])) as c:
            keys = [i for i, p in enumerate(c.demux(video=0)) if p.size and p.is_keyframe]
        with av.open(io.BytesIO(s["mp4"])) as c:
            return keys, [f.to_ndarray(format="gray").astype(int) for f in c.decode(video=0)]
    same, shifted = [], []
    for a, b in zip(got, got[1:]):
        assert np.array_equal(pcm(a)[16000:], pcm(b)[:len(pcm(a)) - 16000])  # same samples
        (_, fa), (keys_b, fb) = frames(a), frames(b)
        assert keys_b[0] == 0 and max(np.diff(keys_b + [len(fb)])) <= 25
        same.append(np.abs(fa[25] - fb[0]).mean())  # one source frame, two encodings
        shifted.append(np.abs(fa[25] - fb[12]).mean())
    assert max(same) < 1.5 and np.mean(same) < 0.5 * np.mean(shifted)
    # the per-clip PyAV encoders are as deterministic as ffmpeg's segmenting
    shard(f"input={tmp_path / 'in'}", f"output={tmp_path / 'again'}", "workers=1",
          "clip_seconds=2", "stride_seconds=1", "short_side=64", "crf=12", "holdout=0")
    assert (out / "shard-000000.tar").read_bytes() == (tmp_path / "again/shard-000000.tar").read_bytes()


def test_slices_and_worker_counts_give_identical_bytes(run, corpus, tmp_path):
    ref, _ = run
    out = tmp_path / "sliced"
    common = [f"input={corpus}", f"output={out}", "require_audio=false", "workers=1", *SMALL]
    first = shard(*common, "slice=0/2")
    assert first["shards_written"] == 2 and not first["complete"]
    assert not (out / "index.json").exists()
    with pytest.raises(InputError, match="incomplete"):
        shard(*common, "merge_only=true")
    second = shard(*common, "slice=1/2")
    assert second["shards_written"] == 2 and second["complete"]
    names = sorted(p.name for p in ref.iterdir() if p.suffix in (".tar", ".json"))
    assert names == sorted(p.name for p in out.iterdir() if p.suffix in (".tar", ".json"))
    for name in names:  # workers=2 in one go == workers=1 in two slices, byte for byte
        assert (ref / name).read_bytes() == (out / name).read_bytes(), name
    (out / "index.json").unlink()
    assert shard(*common, "merge_only=true")["clips"] == first["clips"] + second["clips"]
    assert (ref / "index.json").read_bytes() == (out / "index.json").read_bytes()


def test_help_and_one_line_errors(capsys, tmp_path):
    assert main(["shard", "--help"]) == 0
    text = capsys.readouterr().out
    for key, _type, _default, helptext in flat_fields(ShardConfig):
        assert key in text and helptext, key
    assert main(["shard", f"input={tmp_path / 'nothing'}", f"output={tmp_path / 'out'}"]) == 1
    assert "nothing: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written for a bad input
    assert main(["shard", f"input={DATA}", f"output={tmp_path / 'out'}", "short_side=63"]) == 2  # a config error
    assert "short_side" in capsys.readouterr().err
