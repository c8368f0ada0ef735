"""The decoded s16le mono track of an input: clip windows (wrapped as WAV by
``pipeline.io.wav``), loudness, and the decode of an audio-only input (ESC-50).

A canonical 44-byte header + raw 16-bit samples means sample ``n`` lies at byte
``44 + 2 n``: any window is read by offset, without decoding. Windows are exact sample
ranges of the track (zero-padded where the track ends early), so audio and video of a
clip cover the same instants.
"""
from __future__ import annotations

import os

import numpy as np

from pipeline.shard.transcode import Decoded, _run


def track_window(path: str, first: int, count: int) -> bytes:
    """``count`` s16 samples from sample ``first`` of a raw track; zeros past its end."""
    out = bytearray(2 * count)
    with open(path, "rb") as fh:
        fh.seek(2 * max(first, 0))
        got = fh.read(2 * count)
    out[: len(got)] = got
    return bytes(out)


def rms(pcm: bytes) -> float:
    """Root mean square level of s16 samples, 1.0 = full scale."""
    if not pcm:
        return 0.0
    x = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(x * x)))


def track_rms(path: str, chunk: int = 1 << 20) -> float:
    """RMS of a whole raw track, read in chunks (tracks can be hours long): 1 MiB of
    samples (4 MiB as float64) at a time, whatever the track's length."""
    total, n = 0.0, 0
    if not os.path.exists(path):
        return 0.0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            x = np.frombuffer(block[: len(block) // 2 * 2], "<i2").astype(np.float64)
            total += float(np.dot(x, x))
            n += len(x)
    return float(np.sqrt(total / n)) / 32768.0 if n else 0.0


def decode_track(path: str, out_path: str, rate: int, start: float | None = None,
                 duration: float | None = None, ffmpeg: str = "ffmpeg", threads: int = 0,
                 timeout: float = 3600.0) -> Decoded:
    """Decode the first audio stream of ``path`` once to s16le mono at ``rate`` in
    ``out_path`` (a video input's track comes from its single transcode instead)."""
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if threads:
        cmd += ["-threads", str(threads)]
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-i", path, "-map_metadata", "-1", "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
            "-f", "s16le", out_path]
    out = Decoded()
    _run(cmd, timeout, out)
    if os.path.exists(out_path):
        out.audio_samples = os.path.getsize(out_path) // 2
    return out
