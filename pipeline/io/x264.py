"""x264 options that make an encode a pure function of its frames, for every encoder
of the project (the shard stage's ffmpeg CLI and PyAV paths, the synthetic writer), and
the versions of those encoders, which the shard fingerprint records: the same options
give the same bytes only from the same encoder build."""
from __future__ import annotations

import io
import re
import subprocess
from functools import lru_cache

# One encoder thread: x264's output depends on its thread count, which would otherwise
# follow the machine's cores.
THREADS = 1


@lru_cache(maxsize=1)
def x264_params() -> str:
    """The ``x264-params`` value for bit-exact output, or "" where none is needed. On a
    CPU with AVX-512, the x264 that PyAV bundles gave different bytes for the same frames
    from one encode to the next (about one in five, in the same process; seen with PyAV
    18.1 on a Sapphire Rapids core); capped at AVX2 kernels its output is a function of
    its input again. Only capped where AVX-512 is present, which implies AVX2: naming a
    level the CPU lacks would crash."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return ""
    return "asm=AVX2" if {"avx512bw", "avx2"} <= flags else ""


def x264_options() -> dict[str, str]:
    """``x264_params`` as PyAV codec options."""
    params = x264_params()
    return {"x264-params": params} if params else {}


def x264_cli_args(threads: int) -> list[str]:
    """The same settings as ffmpeg command-line options: x264 threads and ``x264_params``."""
    params = x264_params()
    return ["-threads", str(threads), *(["-x264-params", params] if params else [])]


_X264_CORE = re.compile(rb"x264 - core (\d+)(?: (r\d+ [0-9a-f]+))?")


def _x264_build(h264: bytes) -> str:
    """x264's build as it stamps it into every stream it writes ("core 164 r3095 baee400")."""
    m = _X264_CORE.search(h264)
    return " ".join(g.decode() for g in m.groups() if g) if m else "unknown"


@lru_cache(maxsize=8)
def encoder_versions(ffmpeg: str) -> dict[str, str]:
    """Versions of the encoders that write shard bytes: the ffmpeg executable ``ffmpeg`` and
    the libx264 it links, PyAV and the libavcodec and libx264 it bundles. Raises OSError
    (or CalledProcessError) when ``ffmpeg`` cannot run."""
    import av
    import numpy as np

    head = subprocess.run([ffmpeg, "-version"], capture_output=True, check=True, timeout=60).stdout
    one_frame = subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "color=c=black:s=16x16:d=0.04", "-frames:v", "1", "-c:v", "libx264", "-f", "h264", "-"],
        capture_output=True, check=True, timeout=60).stdout
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    libavcodec = av.library_versions.get("libavcodec", ())
    version = re.search(rb"ffmpeg version (\S+)", head)
    return {"ffmpeg": version.group(1).decode() if version else "unknown",
            "ffmpeg_x264": _x264_build(one_frame),
            "pyav": av.__version__, "pyav_libavcodec": ".".join(map(str, libavcodec)),
            "pyav_x264": _x264_build(buf.getvalue())}
