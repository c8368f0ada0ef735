"""One clip's H.264 mp4, encoded in memory frame by frame with PyAV.

Settings that make the bytes a pure function of the frames: a fixed x264 thread count
(x264 is deterministic for a given count, which would otherwise follow the machine's
cores), x264 kept off its AVX-512 kernels (``x264_options``) and the bitexact flags (no
library version strings in the file). A keyframe at least
every ``gop`` frames keeps random access to any clip position cheap for the loader.
"""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from pipeline.io.x264 import x264_options


class ClipEncoder:
    def __init__(self, width: int, height: int, fps: int, crf: int = 23,
                 preset: str = "veryfast", gop: int | None = None, threads: int = 1):
        self.width, self.height, self.fps = width, height, fps
        self.n_frames = 0
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, "w", format="mp4", options={"fflags": "+bitexact"})
        st = self._out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.codec_context.thread_count = threads
        st.codec_context.flags |= av.codec.context.Flags.bitexact
        g = gop or fps
        st.options = {"crf": str(crf), "preset": preset, "g": str(g), "keyint_min": str(g),
                      **x264_options()}
        self._stream = st
        self._tb = Fraction(1, fps)

    def add(self, yuv420p: np.ndarray) -> None:
        """Append one frame given as a yuv420p plane array of shape (H * 3 / 2, W)."""
        frame = av.VideoFrame.from_ndarray(yuv420p, format="yuv420p")
        frame.pts, frame.time_base = self.n_frames, self._tb
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.n_frames += 1

    def finish(self) -> bytes:
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()
        return self._buf.getvalue()

    def abort(self) -> None:
        """Drop the clip (a tail too short to keep); frees the encoder."""
        try:
            self._out.close()
        except Exception:  # nothing was written worth keeping
            pass
