"""Sample keys that survive webdataset: ASCII, no dots, unique per input and clip.

webdataset splits a member name at its first dot (``my.clip.v2.mp4`` -> key ``my``), and
tar names, shells and URLs dislike spaces and non-ASCII. A key is therefore a readable
sanitised stem plus a short hash of the input's identity (its relative path, and segment
when a manifest cuts one file several ways), plus the clip index.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

STEM_CHARS = 40
HASH_CHARS = 10
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def sanitise(name: str, limit: int = STEM_CHARS) -> str:
    """ASCII letters, digits, ``_`` and ``-`` only; accents folded (é -> e), rest -> ``_``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    safe = _UNSAFE.sub("_", folded).strip("_-")
    return safe[:limit].rstrip("_-") or "video"


def input_prefix(path: str, identity: str | None = None) -> str:
    """Key prefix of one input: ``<stem of path>_<hash of identity>`` (identity defaults to
    the path), the same on every machine and run."""
    identity = path if identity is None else identity
    stem = PurePosixPath(path).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]  # drop the extension; inner dots become ``_``
    digest = hashlib.sha1(name_bytes(identity)).hexdigest()[:HASH_CHARS]
    return f"{sanitise(stem)}_{digest}"


def name_bytes(text: str) -> bytes:
    """The bytes of a name: UTF-8, and a file name's undecodable bytes (which Python lists
    as lone surrogates, U+DC80..U+DCFF) as the bytes they stand for, so the hash of a valid
    name is unchanged and an odd one hashes without error, distinct from its look-alikes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate (a JSON escape such as \\ud800)
        return text.encode("utf-8", "surrogatepass")


def sample_key(prefix: str, clip_index: int) -> str:
    return f"{prefix}_{clip_index:04d}"


def is_valid_key(key: str) -> bool:
    """What webdataset and USTAR tar names accept unchanged (member name < 100 chars)."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", key)) and len(key) < 90


def video_of(key: str) -> str:
    """The source video of a sample key (its prefix; every clip of one input shares it),
    so clips can be grouped per video from a batch's ``key`` alone."""
    return key.rsplit("_", 1)[0]
