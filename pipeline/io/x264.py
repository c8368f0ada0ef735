"""x264 options that make an encode a pure function of its frames, for every encoder
of the project (the shard stage's ffmpeg CLI and PyAV paths, the synthetic writer)."""
from __future__ import annotations

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
