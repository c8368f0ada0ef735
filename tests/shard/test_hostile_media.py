"""Files that must not reach outside the corpus (issue 16, items 4 and 5): real ffmpeg on a
hostile corpus built here: an HLS playlist and a concat list posing as .mp4 files, links
out of the corpus, a linked class folder, a link loop and a name that looks like an option.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
VIDEO = DATA / "bunny_6ch.mp4"  # 2.2 s with audio


@pytest.fixture
def hostile(tmp_path) -> Path:
    """tmp/corpus (the input) beside tmp/outside (private files it must not reach)."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "cls").mkdir(parents=True)
    outside.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(VIDEO), "-c", "copy", "-f", "mpegts",
                    str(outside / "private.ts")], check=True)
    shutil.copy(VIDEO, outside / "private.mp4")
    (corpus / "innocent.mp4").write_text(  # 121 bytes that make ffmpeg read private.ts
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n"
        f"file://{outside / 'private.ts'}\n#EXT-X-ENDLIST\n")
    shutil.copy(outside / "private.ts", corpus / "secret_ts")  # not a video extension
    (corpus / "list.mp4").write_text("ffconcat version 1.0\nfile secret_ts\n")
    shutil.copy(VIDEO, corpus / "-show_data.mp4")
    shutil.copy(VIDEO, corpus / "cls" / "real.mp4")
    (corpus / "cls" / "escape.mp4").symlink_to(outside / "private.mp4")
    (corpus / "cls" / "loop").symlink_to("..")
    (corpus / "alias").symlink_to(corpus / "cls")          # a linked class folder, inside
    (corpus / "linked_outside").symlink_to(outside)       # a linked class folder, outside
    return corpus


def shard(out: Path, *args: str) -> dict[str, dict]:
    assert main(["shard", f"output={out}", "clip_seconds=1", "short_side=32", "workers=1",
                 "holdout=0", "--quiet", *args]) == 0
    return {e["path"]: e for e in json.loads((out / "index.json").read_text())["inputs"]}


def test_every_hostile_input_gets_one_status_and_nothing_leaks(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(hostile)  # input=. : paths start with the file name, "-show_data.mp4"
    got = shard(tmp_path / "out", "input=.")
    status = {p: (e["status"], e["reason"]) for p, e in got.items()}
    assert status == {
        "innocent.mp4": ("failed", "unsupported_container"),        # HLS playlist
        "list.mp4": ("failed", "unsupported_container"),            # concat list
        "-show_data.mp4": ("ok", None),                             # a file, not an option
        "cls/real.mp4": ("ok", None),
        "cls/escape.mp4": ("failed", "outside_corpus"),             # link to a file outside
        "alias/real.mp4": ("ok", None),                             # linked class folder
        "alias/escape.mp4": ("failed", "outside_corpus"),
        "linked_outside/private.mp4": ("failed", "outside_corpus"),
        "linked_outside/private.ts": ("failed", "outside_corpus"),
    }, status
    assert got["innocent.mp4"]["clips"] == 0 and "hls" in got["innocent.mp4"]["detail"]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["totals"]["clips"] == 6  # 2 per ok input: nothing of private.* got in


def test_a_confined_manifest_refuses_paths_out_of_its_folder(hostile, tmp_path):
    outside = hostile.parent / "outside"
    manifest = hostile / "manifest.jsonl"
    rows = [{"path": "../outside/private.mp4"}, {"path": str(outside / "private.mp4")},
            {"path": "cls/real.mp4"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = shard(tmp_path / "out", f"input={manifest}", "confine=true")
    assert {p: e["reason"] for p, e in got.items()} == {
        "../outside/private.mp4": "outside_corpus", str(outside / "private.mp4"): "outside_corpus",
        "cls/real.mp4": None}


def test_pyav_opens_the_same_way(hostile):
    """The PyAV counterpart (detection on a video file) refuses the same lists."""
    import av

    from pipeline.shard.probe import open_local
    with open_local(str(hostile / "-show_data.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) > 0
    for name in ("innocent.mp4", "list.mp4"):
        with pytest.raises(av.error.FFmpegError):
            open_local(str(hostile / name))
