"""Deterministic shards on both encode paths: the ffmpeg CLI gets the x264 options the
PyAV encoders get, and the shard fingerprint records the encoders' versions, so a
different ffmpeg redoes the shards instead of mixing its bytes with the old ones."""
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import InputError
from pipeline.io.x264 import encoder_versions, x264_cli_args, x264_options
from pipeline.shard.config import ShardConfig
from pipeline.shard.driver import make_plan
from pipeline.shard.transcode import TranscodeSettings, ffmpeg_command

DATA = Path(__file__).resolve().parents[1] / "data"


def test_cli_path_gets_the_pyav_x264_options():
    s = TranscodeSettings(fps=25, width=64, height=48, audio_rate=16000, clip_frames=50,
                          stride_frames=50, min_frames=25, encoder_threads=3)
    cmd = ffmpeg_command("in.mp4", s, 0, None, None, segments="seg_%06d.mp4", cuts="50")
    codec = cmd[cmd.index("libx264") + 1:]
    assert codec[:2] == ["-threads", "3"] and x264_cli_args(3) == codec[:len(x264_cli_args(3))]
    params = x264_options().get("x264-params")
    if params:  # this machine has AVX-512: both paths cap x264 at AVX2
        assert codec[2:4] == ["-x264-params", params]
    real = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                           "color=s=16x16:d=0.04", "-frames:v", "1", "-c:v", "libx264",
                           *x264_cli_args(1), "-f", "null", "-"], capture_output=True, text=True)
    assert real.returncode == 0, real.stderr  # the installed ffmpeg accepts them


def test_encoder_versions_are_read_from_the_real_tools():
    v = encoder_versions("ffmpeg")
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    assert first[:2] == ["ffmpeg", "version"] and v["ffmpeg"] == first[2]
    import av
    assert v["pyav"] == av.__version__ and v["pyav_libavcodec"].count(".") == 2
    assert v["ffmpeg_x264"].split()[0].isdigit() and v["pyav_x264"].split()[0].isdigit()


def test_another_ffmpeg_changes_the_fingerprint(tmp_path):
    """An ffmpeg that reports another version (a wrapper around the real one, as an
    upgraded install would) gives every shard another fingerprint."""
    corpus = tmp_path / "corpus" / "a"
    corpus.mkdir(parents=True)
    shutil.copy(DATA / "park_short.mp4", corpus / "park.mp4")
    wrapper = tmp_path / "ffmpeg"
    real = shutil.which("ffmpeg")
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = "-version" ]; then echo "ffmpeg version 99.0-other"; '
                       f'exit 0; fi\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    plans = [make_plan(load_config(ShardConfig, [], [f"input={tmp_path / 'corpus'}", f"output={tmp_path / 'out'}", "holdout=0",
                                                     f"ffmpeg={ff}"])) for ff in ("ffmpeg", str(wrapper))]
    assert encoder_versions(str(wrapper))["ffmpeg"] == "99.0-other"
    assert [j.fingerprint for j in plans[0].jobs] != [j.fingerprint for j in plans[1].jobs]
    again = make_plan(load_config(ShardConfig, [], [f"input={tmp_path / 'corpus'}", f"output={tmp_path / 'out'}", "holdout=0"]))
    assert [j.fingerprint for j in again.jobs] == [j.fingerprint for j in plans[0].jobs]
    missing = load_config(ShardConfig, [], [f"input={tmp_path / 'corpus'}", f"output={tmp_path / 'out'}", "holdout=0",
                                             f"ffmpeg={tmp_path / 'no-ffmpeg'}"])
    with pytest.raises(InputError, match="no-ffmpeg.*cannot run"):
        make_plan(missing)
