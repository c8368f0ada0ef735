"""Broken and policy-rejected inputs: each gets its status and reason, none stops the run."""
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from pipeline.cli import build_config
from pipeline.io.wav import pcm_wav
from pipeline.stages import STAGES

DATA = Path(__file__).resolve().parents[1] / "data"
EXPECTED = {
    "empty.mp4": ("failed", "empty_file"),
    "text.mp4": ("failed", "not_a_video"),
    "sound_only.mp4": ("failed", "not_a_video"),
    "cut_moov_at_end.mp4": ("failed", "truncated"),
    "cut_faststart.mp4": ("failed", "truncated"),
    "cut.webm": ("failed", "truncated"),
    "garbage_packets.mkv": ("failed", "decode_error"),
    "city_no_audio.mpg": ("skipped", "no_audio_stream"),
    "earth_silent_audio.mp4": ("skipped", "silent_audio"),
    "park_short.mp4": ("skipped", "too_short"),
    "lego_toy.mp4": ("ok", None),
}


def shard(*overrides: str) -> dict:
    stage = STAGES["shard"]
    return stage.load_target()(build_config(stage, [], list(overrides)))


def garbage_packets(src: Path, dst: Path) -> None:
    """A valid Matroska file, intact audio, H.264 packets of random bytes: demuxes, never decodes."""
    rng = np.random.default_rng(0)
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout, aout = out.add_stream_from_template(vin), out.add_stream_from_template(ain)
        for p in inp.demux(vin, ain):
            if p.size == 0:
                continue
            video = p.stream.type == "video"
            data = rng.integers(0, 256, p.size, dtype=np.uint8).tobytes() if video else bytes(p)
            q = av.Packet(data)
            q.pts, q.dts, q.time_base = p.pts, p.dts, p.time_base
            q.stream, q.is_keyframe = (vout if video else aout), p.is_keyframe
            out.mux(q)


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is a text file that pretends to be a video\n" * 20)
    tone = (np.sin(np.arange(32000) * 0.05) * 8000).astype("<i2").tobytes()
    (root / "sound_only.mp4").write_bytes(pcm_wav(tone, 16000))
    lego = (DATA / "lego_toy.mp4").read_bytes()  # its moov box is at the end
    (root / "cut_moov_at_end.mp4").write_bytes(lego[: len(lego) // 2])
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(DATA / "lego_toy.mp4"), "-c", "copy",
                    "-movflags", "+faststart", str(root / "faststart.tmp.mp4")], check=True)
    fast = (root / "faststart.tmp.mp4").read_bytes()
    (root / "faststart.tmp.mp4").unlink()
    (root / "cut_faststart.mp4").write_bytes(fast[: len(fast) // 2])
    webm = (DATA / "rocket_launch.webm").read_bytes()
    (root / "cut.webm").write_bytes(webm[: len(webm) // 2])
    garbage_packets(DATA / "lego_toy.mp4", root / "garbage_packets.mkv")
    for name in ("city_no_audio.mpg", "earth_silent_audio.mp4", "park_short.mp4", "lego_toy.mp4"):
        shutil.copy(DATA / name, root / name)
    return root


def test_each_broken_input_gets_its_reason(broken, tmp_path):
    out = tmp_path / "out"
    result = shard(f"input={broken}", f"output={out}", "workers=2", "videos_per_shard=4",
                   "clip_seconds=2", "short_side=64", "require_audio=true", "holdout=0")
    index = json.loads((out / "index.json").read_text())
    got = {e["path"]: (e["status"], e["reason"]) for e in index["inputs"]}
    assert got == EXPECTED
    assert result["ok"] == 1 and result["failed"] == 7 and result["skipped"] == 3
    for e in index["inputs"]:
        assert (e["clips"] > 0) == (e["status"] == "ok")
    sources = {json.loads(s["json"])["source"]
               for s in wds.WebDataset([str(p) for p in sorted(out.glob("*.tar"))], shardshuffle=False)}
    assert sources == {"lego_toy.mp4"}  # rejected inputs leave no samples behind
    stats = json.loads((out / "shard-000000.stats.json").read_text())
    assert stats["statuses"] == {"failed:truncated": 3, "skipped:no_audio_stream": 1}


def test_keep_truncated_keeps_the_decodable_part(broken, tmp_path):
    (tmp_path / "m.csv").write_text(f"path\n{broken / 'cut_faststart.mp4'}\n")
    out = tmp_path / "out"
    shard(f"input={tmp_path / 'm.csv'}", f"output={out}", "workers=1", "keep_truncated=true",
          "clip_seconds=2", "short_side=64")
    entry = json.loads((out / "index.json").read_text())["inputs"][0]
    assert (entry["status"], entry.get("note")) == ("ok", "truncated")
    assert entry["clips"] >= 1 and 1.0 < entry["seconds"] < 5.0
