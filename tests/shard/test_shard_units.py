"""Shard stage building blocks: keys, clip policy, corpus reading, WAV layout, tar bytes."""
import io
import json
import tarfile
import wave

import numpy as np
import pytest
import webdataset as wds

from pipeline.config import ConfigError
from pipeline.io.wav import pcm_wav
from pipeline.shard.clip_spans import clip_spans, frames_of
from pipeline.shard.corpus import class_names, read_corpus
from pipeline.shard.keys import input_prefix, is_valid_key, sample_key, sanitise
from pipeline.shard.probe import looks_like_container, output_size
from pipeline.shard.driver import parse_slice
from pipeline.shard.audio_track import track_window as pcm_window
from pipeline.shard.input import rebase_boxes
from pipeline.io.tar import DeterministicTar
from pipeline.io.wav import read_window
from pipeline.errors import InputError


def test_keys_are_safe_and_distinct(tmp_path):
    names = ["my.clip.v2.mp4", "with space.mp4", "naïve café 東京.mp4", "a/same.mp4", "b/same.mp4",
             "..hidden..mp4", "-dash.mp4", "東京.mp4"]
    prefixes = [input_prefix(n) for n in names]
    assert len(set(prefixes)) == len(names)
    for p in prefixes:
        key = sample_key(p, 12)
        assert is_valid_key(key), key
        assert "." not in key and " " not in key and key.isascii()
    assert input_prefix("my.clip.v2.mp4").startswith("my_clip_v2_")
    assert input_prefix("naïve café 東京.mp4").startswith("naive_cafe_")
    assert sanitise("東京") == "video"
    # the same path always gives the same key (resume and slices rely on it)
    assert input_prefix("a/same.mp4") == input_prefix("a/same.mp4")
    # a manifest segment of a file is another input: same stem, another hash
    seg = input_prefix("a/same.mp4", "a/same.mp4@1.0-4.0")
    assert seg.startswith("same_") and seg != input_prefix("a/same.mp4")
    assert input_prefix("user@host.mp4").startswith("user_host_")
    # webdataset sees one sample per key with all members, even for dotted names
    path = tmp_path / "k.tar"
    tar = DeterministicTar(path)
    keys = [sample_key(p, 0) for p in prefixes]
    for k in keys:
        tar.add(f"{k}.json", b"{}")
        tar.add(f"{k}.txt", b"x")
    tar.close()
    got = [(s["__key__"], sorted(k for k in s if not k.startswith("__")))
           for s in wds.WebDataset(str(path), shardshuffle=False)]
    assert [k for k, _ in got] == keys
    assert all(m == ["json", "txt"] for _, m in got)


def test_clip_policy():
    assert clip_spans(250, 100, 100, 25) == [(0, 100), (100, 100), (200, 50)]
    assert clip_spans(210, 100, 100, 25) == [(0, 100), (100, 100)]  # 10-frame tail dropped
    assert clip_spans(200, 100, 100, 25) == [(0, 100), (100, 100)]
    assert clip_spans(60, 100, 100, 25) == [(0, 60)]                 # shorter than one clip
    assert clip_spans(20, 100, 100, 25) == []
    # overlapping clips: only the longest tail that adds frames is kept
    assert clip_spans(230, 100, 50, 25) == [(0, 100), (50, 100), (100, 100), (150, 80)]
    assert clip_spans(250, 100, 50, 25) == [(0, 100), (50, 100), (100, 100), (150, 100)]
    assert clip_spans(200, 100, 50, 25) == [(0, 100), (50, 100), (100, 100)]
    # gaps between clips
    assert clip_spans(500, 100, 200, 25) == [(0, 100), (200, 100), (400, 100)]
    assert frames_of(4.0, 25) == 100 and frames_of(0.12, 25) == 3
    with pytest.raises(ValueError):
        clip_spans(10, 0, 1, 1)


def test_folder_corpus_labels_and_order(tmp_path):
    for rel in ["dog/b.mp4", "dog/a.MP4", "cat/x.webm", "top.mkv", "cat/notes.txt", ".hidden/z.mp4",
                "cat/.partial.mp4"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    items = read_corpus(str(tmp_path))
    assert [it.path for it in items] == ["cat/x.webm", "dog/a.MP4", "dog/b.mp4", "top.mkv"]
    assert [it.label for it in items] == ["cat", "dog", "dog", None]
    assert class_names(items) == ["cat", "dog"]
    assert all(it.label is None for it in read_corpus(str(tmp_path), labels_from_folders=False))


def test_manifests_csv_and_jsonl(tmp_path):
    (tmp_path / "m.csv").write_text(
        "path,caption,label,start,end,boxes,source_id\n"
        "clips/b.mp4,a dog,dog,1.5,3,\"[[2.0,0.1,0.1,0.5,0.5]]\",x1\n"
        "a.mp4,,cat,,,,\n"
        "clips/b.mp4,a dog,dog,1.5,3,,\n")
    items = read_corpus(str(tmp_path / "m.csv"))
    assert [it.path for it in items] == ["a.mp4", "clips/b.mp4", "clips/b.mp4"]
    assert items[0].abspath == str(tmp_path / "a.mp4") and items[0].caption is None
    b = items[1]
    assert (b.start, b.end, b.label, b.caption) == (1.5, 3.0, "dog", "a dog")
    assert b.boxes == [[2.0, 0.1, 0.1, 0.5, 0.5]] and b.extra == {"source_id": "x1"}
    # the same file and segment twice: distinct identities, hence distinct keys
    assert len({it.identity for it in items}) == 3
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "v.mp4", "label": 10}) + "\n\n"
                                      + json.dumps({"path": "w.mp4", "label": 9}) + "\n")
    items = read_corpus(str(tmp_path / "m.jsonl"))
    assert class_names(items) == ["9", "10"]  # integer labels sort as numbers


@pytest.mark.parametrize("line, message", [
    ('{"caption": "no path"}', "no 'path'"),
    ('{"path": "a.mp4", "start": 3, "end": 2}', "end"),
    ('{"path": "a.mp4", "boxes": [[1, 2]]}', "boxes"),
    ('{"path": "a.mp4", "start": "soon"}', "start"),
    ("not json", "not valid JSON"),
])
def test_bad_manifest_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"path": "ok.mp4"}) + "\n" + line + "\n")
    with pytest.raises(InputError, match=rf"m.jsonl:2: .*{message}"):
        read_corpus(str(path))


def test_missing_or_empty_input_is_one_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_corpus(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="no videos"):
        read_corpus(str(tmp_path))
    (tmp_path / "list.txt").write_text("a.mp4\n")
    with pytest.raises(InputError, match="manifest"):
        read_corpus(str(tmp_path / "list.txt"))


def test_boxes_rebased_to_clip_time():
    boxes = [[t / 25, 0.1, 0.2, 0.3, 0.4] for t in range(0, 250, 5)]
    got = rebase_boxes(boxes, 4.0, 8.0)
    assert got[0] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert all(0 <= b[0] < 4.0 for b in got) and len(got) == 20
    assert rebase_boxes(boxes, 20.0, 24.0) == []


def test_wav_is_seekable_pcm_the_loader_reads():
    rate = 16000
    pcm = (np.sin(np.arange(rate) / 7.0) * 10000).astype("<i2").tobytes()
    data = pcm_wav(pcm, rate)
    assert len(data) == 44 + len(pcm) and data[44:] == pcm  # sample n at byte 44 + 2n
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (rate, 1, 2, rate)
    window = read_window(data, 0.25, 0.5, rate)
    ref = np.frombuffer(pcm, "<i2")[4000:12000].astype(np.float32) / 32768
    assert np.allclose(window, ref)


def test_pcm_window_pads_past_the_end(tmp_path):
    path = tmp_path / "a.s16"
    path.write_bytes(np.arange(10, dtype="<i2").tobytes())
    assert np.frombuffer(pcm_window(str(path), 8, 4), "<i2").tolist() == [8, 9, 0, 0]


def test_tar_bytes_do_not_depend_on_time_or_user(tmp_path, monkeypatch):
    def write(path):
        tar = DeterministicTar(path)
        tar.add("a_0000.json", b"{}")
        tar.add("a_0000.mp4", b"\x00" * 1000)
        return tar.close()
    write(tmp_path / "a.tar")
    monkeypatch.setattr("time.time", lambda: 1.7e9)
    write(tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tf:
        assert [m.name for m in tf.getmembers()] == ["a_0000.json", "a_0000.mp4"]
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_sizes_signatures_and_slices():
    assert output_size(1280, 720, 128) == (228, 128)
    assert output_size(320, 568, 128) == (128, 228)  # portrait
    assert output_size(160, 120, 128) == (170, 128)  # small inputs are scaled up
    assert all(v % 2 == 0 for v in output_size(333, 199, 64))
    assert looks_like_container(b"\x00\x00\x00\x1cftypmp42")
    assert looks_like_container(b"\x1aE\xdf\xa3rest")
    assert not looks_like_container(b"hello world, not a video")
    assert not looks_like_container(b"Good morning")
    assert parse_slice("") == (0, 1) and parse_slice("2/5") == (2, 5)
    for bad in ("5/5", "1", "a/b", "-1/3"):
        with pytest.raises(ConfigError):
            parse_slice(bad)
