"""Write an H.264 + AAC mp4 from arrays with PyAV (the synthetic corpus's writer)."""
from __future__ import annotations

import os
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np


@lru_cache(maxsize=1)
def x264_options() -> dict[str, str]:
    """Extra PyAV libx264 options for bit-exact output. On a CPU with AVX-512, the x264
    that PyAV bundles gave different bytes for the same frames from one encode to the next (about
    one in five, in the same process; seen with PyAV 18.1 on a Sapphire Rapids core);
    capped at AVX2 kernels its output is a function of its input again. Only capped where
    AVX-512 is present, which implies AVX2: naming a level the CPU lacks would crash."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return {}
    return {"x264-params": "asm=AVX2"} if {"avx512bw", "avx2"} <= flags else {}


def write_mp4(path: str | os.PathLike, video: np.ndarray, fps: int,
              audio: np.ndarray | None = None, audio_rate: int = 16000,
              crf: int = 23, gop: int | None = None) -> Path:
    """Encode ``video`` uint8 [T, H, W, 3] and optional mono ``audio`` float32 [n].

    Written to a temporary name and renamed, so a killed run never leaves a file that
    looks complete but is not.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = video.shape[2], video.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop or fps), **x264_options()}
        vs.codec_context.thread_count = 1  # bit-exact output for a seed
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=audio_rate, layout="mono")
        for i, frame in enumerate(video):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for packet in vs.encode(vf):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            block = 1024
            for start in range(0, len(audio), block):
                chunk = np.ascontiguousarray(audio[start:start + block], np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate = audio_rate
                af.pts = start
                af.time_base = Fraction(1, audio_rate)
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    os.replace(tmp, path)
    return path
