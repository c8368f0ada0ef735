"""File and folder names that are not UTF-8 (issue 26, item 4): one odd byte must not stop
the corpus. Real files with such names, real ffmpeg: the odd inputs are sharded under
safe keys (their own hash), every name written out is valid UTF-8 (the odd byte as
``\\xNN``), and a manifest that is not UTF-8 is one error naming its line.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.shard.keys import is_valid_key, video_of

VIDEO = Path(__file__).resolve().parents[1] / "data" / "bunny_6ch.mp4"  # 2.2 s with audio
ARGS = ["clip_seconds=1", "short_side=32", "workers=1", "holdout=0", "--quiet"]


def name(raw: bytes) -> str:
    """A file name from its bytes, as Python lists it (odd bytes as lone surrogates)."""
    return os.fsdecode(raw)


def strict_json(path: Path):
    """Parse a file that must be valid UTF-8 JSON whose strings are valid Unicode text."""
    text = path.read_bytes().decode("utf-8")  # strict: raises on any invalid byte
    obj = json.loads(text)
    json.dumps(obj, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return obj


def members(out: Path) -> dict[str, dict[str, bytes]]:
    found: dict[str, dict[str, bytes]] = {}
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                found.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return found


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    for rel in (b"a/good.mp4", b"a/odd\xfe.mp4", b"a/odd\\xfe.mp4", b"b\xff/z.mp4"):
        path = root / name(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(VIDEO, path)
    return root


def test_odd_bytes_in_file_and_folder_names_are_sharded_under_safe_keys(corpus, tmp_path):
    out = tmp_path / "out"
    assert main(["shard", f"input={corpus}", f"output={out}", *ARGS]) == 0
    index = strict_json(out / "index.json")
    status = {e["path"]: (e["status"], e["reason"]) for e in index["inputs"]}
    # two entries read "a/odd\xfe.mp4": the one with the byte 0xfe, and the one whose
    # name really is those four characters; they are still two inputs with two keys
    assert sorted(status) == ["a/good.mp4", "a/odd\\xfe.mp4", "b\\xff/z.mp4"]
    assert len(index["inputs"]) == 4 and all(e["status"] == "ok" for e in index["inputs"]), status
    assert index["classes"] == ["a", "b\\xff"]
    for stats in out.glob("*.stats.json"):
        strict_json(stats)
    found = members(out)
    assert all(is_valid_key(k) for k in found)
    videos = {video_of(k) for k in found}
    assert len(videos) == 4 and len(found) == 8  # 2 clips of each input, 4 distinct inputs
    sources = {}
    for key, sample in found.items():
        meta = json.loads(sample["json"].decode("utf-8"))
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
        sources.setdefault(meta["source"], set()).add(video_of(key))
        assert int(sample["cls"]) == index["classes"].index(meta["label"])
        assert sample["mp4"] and sample["wav"]
    assert sources["b\\xff/z.mp4"] and len(sources["a/odd\\xfe.mp4"]) == 2
    # the re-run agrees: the same plan, every shard already complete
    assert main(["shard", f"input={corpus}", f"output={out}", *ARGS]) == 0
    assert strict_json(out / "index.json") == index


def test_a_manifest_may_name_an_odd_file_by_escape_but_must_be_utf8(corpus, tmp_path, capsys):
    manifest = corpus / "list.jsonl"
    rows = [{"path": name(b"a/odd\xfe.mp4"), "label": "odd"}, {"path": "a/good.mp4", "label": "good"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))  # "\udcfe" escape
    out = tmp_path / "out"
    assert main(["shard", f"input={manifest}", f"output={out}", *ARGS]) == 0
    index = strict_json(out / "index.json")
    assert {e["path"]: e["status"] for e in index["inputs"]} == {"a/odd\\xfe.mp4": "ok", "a/good.mp4": "ok"}

    latin = corpus / "latin1.jsonl"
    latin.write_bytes(b'{"path": "a/good.mp4"}\n{"path": "a/odd\xfe.mp4"}\n')
    capsys.readouterr()
    assert main(["shard", f"input={latin}", f"output={tmp_path / 'never'}", *ARGS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {latin}:2: not UTF-8 text (byte 0xfe); a manifest is UTF-8"], err
    assert not (tmp_path / "never").exists()  # stopped before anything was written
