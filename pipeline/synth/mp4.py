"""Write an H.264 + AAC mp4 from arrays with PyAV (the synthetic corpus's writer)."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.io.atomic import commit, temp_path
from pipeline.io.x264 import THREADS, x264_options


def write_mp4(path: str | os.PathLike, video: np.ndarray, fps: int,
              audio: np.ndarray | None = None, audio_rate: int = 16000,
              crf: int = 23, gop: int | None = None) -> Path:
    """Encode ``video`` uint8 [T, H, W, 3] and optional mono ``audio`` float32 [n].

    Written to a temporary name and renamed, so a killed run never leaves a file that
    looks complete but is not.
    """
    path = Path(path)
    tmp = temp_path(path)
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = video.shape[2], video.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop or fps), **x264_options()}
        vs.codec_context.thread_count = THREADS  # bit-exact output for a seed
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
    return commit(tmp, path)
