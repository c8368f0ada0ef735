"""Small C kernels built with the system compiler on first use; always optional.

Why: a few hot loops (the Sinkhorn row pass, the loader's fused crop-resize-colour) do in
one pass over memory what torch needs several passes for. Each library is compiled once
per host into $PIPELINE_CACHE (default ~/.cache/pipeline), keyed by its source, flags and
host name, and loaded with ctypes. If there is no compiler, ``load_library`` returns None
and callers use their torch path.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
import warnings

# -ffast-math only when compiling: linked with it, gcc < 13 adds crtfastmath.o, whose
# constructor would switch the whole process to flush-denormals-to-zero on load.
FAST_CFLAGS = ("-O3", "-march=native", "-ffast-math", "-fPIC", "-c")


class _Registry:
    """Libraries loaded (or failed) in this process, by name: built at most once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.libs: dict[str, ctypes.CDLL | None] = {}


_REGISTRY = _Registry()


def _build(name: str, src: str, cflags: tuple[str, ...], path: str) -> None:
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        c_file, obj, out = (os.path.join(tmp, f) for f in (f"{name}.c", f"{name}.o", "lib.so"))
        with open(c_file, "w") as f:
            f.write(src)
        for cmd in ([cc, *cflags, c_file, "-o", obj], [cc, "-shared", obj, "-o", out, "-lm"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        os.replace(out, path)  # atomic: concurrent processes never load a partial file


def load_library(name: str, src: str, cflags: tuple[str, ...] = FAST_CFLAGS,
                 signatures: dict[str, list] | None = None) -> ctypes.CDLL | None:
    """The compiled library ``name`` with ``signatures`` (function -> argtypes) set, or None."""
    with _REGISTRY.lock:
        if name in _REGISTRY.libs:
            return _REGISTRY.libs[name]
        key = hashlib.sha1((src + " ".join(cflags) + platform.node()).encode()).hexdigest()[:16]
        cache = os.environ.get("PIPELINE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "pipeline"))
        path = os.path.join(cache, f"{name}_{key}.so")
        lib = None
        try:
            if not os.path.exists(path):
                os.makedirs(cache, exist_ok=True)
                _build(name, src, cflags, path)
            lib = ctypes.CDLL(path)
            for fn, argtypes in (signatures or {}).items():
                getattr(lib, fn).argtypes = argtypes
                getattr(lib, fn).restype = None
        except (OSError, subprocess.SubprocessError) as exc:
            warnings.warn(f"C kernels {name!r} unavailable, using torch ops: {exc}")
            lib = None
        _REGISTRY.libs[name] = lib
        return lib
