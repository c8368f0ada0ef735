"""What an input holds, from ffprobe: streams, duration, display size; or why it is unusable.

Reading headers only is cheap (tens of ms), so policy decisions (no audio stream, too
short, not a video) are made before anything is decoded. A failed probe is classified by
the file's first bytes: a known container signature means the file was cut short
("truncated"), anything else is "not_a_video".

Inputs are opened only as local files (``file:`` + absolute path, so a name such as
``-show_data.mp4`` or ``concat:a|b`` is never read as an option or another protocol) and
only by demuxers of self-contained containers: a playlist or concat list (``hls``,
``concat``, ``dash``, image sequences, ...) would make ffmpeg read files outside the
corpus, so such an input fails with ``unsupported_container`` before anything is read.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction

from pipeline.shard.resources import OutOfResources, ffmpeg_resource_error

# (offset, bytes) signatures of containers ffmpeg reads; ISO-BMFF boxes are checked apart
_MAGIC = ((0, b"\x1aE\xdf\xa3"), (0, b"RIFF"), (0, b"\x00\x00\x01\xba"), (0, b"FLV"),
          (0, b"OggS"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))
_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
# ffmpeg demuxers allowed to open an input: containers that hold their media themselves
# (audio ones too, so a sound file is reported as not_a_video)
CONTAINERS = ("mov", "matroska", "avi", "mpeg", "mpegts", "flv", "ogg", "asf", "mpegvideo", "m4v",
              "h264", "hevc", "dv", "mxf", "nut", "ivf", "obu", "gif", "rm", "yuv4mpegpipe",
              "wav", "w64", "mp3", "flac", "aac", "aiff", "au")


def input_args(path: str) -> list[str]:
    """ffmpeg/ffprobe options that open ``path`` as one self-contained local file."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(CONTAINERS),
            "-i", "file:" + os.path.abspath(path)]


def open_local(path: str):
    """``input_args`` for PyAV: ``av.open`` on one self-contained local file."""
    import av

    return av.open("file:" + os.path.abspath(path),
                   options={"protocol_whitelist": "file", "format_whitelist": ",".join(CONTAINERS)})


class ProbeError(Exception):
    """An input that cannot be used; ``reason`` is the status code written to the index."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Probe:
    duration: float | None          # seconds: the video stream's, else the container's
    video_index: int                # absolute stream index for ``-map 0:N``
    video_codec: str
    width: int                      # display size: sample aspect ratio and rotation applied
    height: int
    fps: float | None               # average frame rate, when the container knows it
    audio_index: int | None         # None: no audio stream at all
    audio_codec: str | None = None
    audio_channels: int = 0
    audio_rate: int = 0
    format_name: str = ""


def looks_like_container(head: bytes) -> bool:
    """True when the first bytes are a known video container's signature."""
    if len(head) >= 8 and head[4:8] in _BOXES:
        return True
    if head[:1] == b"\x47" and head[188:189] == b"\x47":
        return True  # MPEG-TS: a sync byte every 188 bytes
    return any(head[off:off + len(sig)] == sig for off, sig in _MAGIC)


def _float(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"])))
    rot = (stream.get("tags") or {}).get("rotate")
    return int(rot) if rot and rot.lstrip("-").isdigit() else 0


def _rate(text) -> float | None:
    num, _, den = str(text or "").partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def display_size(stream: dict) -> tuple[int, int]:
    w, h = int(stream.get("width") or 0), int(stream.get("height") or 0)
    sar = stream.get("sample_aspect_ratio") or "1:1"
    num, _, den = sar.partition(":")
    if num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0:
        w = int(round(w * Fraction(int(num), int(den))))
    if _rotation(stream) % 180 == 90:
        w, h = h, w
    return w, h


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(W, H) with the short side = ``short_side`` and the long side even, aspect kept."""
    if width <= 0 or height <= 0:
        raise ProbeError("decode_error", f"video has no frame size ({width}x{height})")
    scale = short_side / min(width, height)
    even = lambda v: max(2, int(round(v * scale / 2)) * 2)  # noqa: E731
    return (short_side, even(height)) if width <= height else (even(width), short_side)


def probe(path: str, ffprobe: str = "ffprobe", timeout: float = 120) -> Probe:
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise ProbeError("empty_file")
    cmd = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
           *input_args(path)]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeError("timeout", f"ffprobe took more than {timeout:.0f} s") from None
    info = json.loads(res.stdout or b"{}") if res.stdout.strip() else {}
    streams, fmt = info.get("streams", []), info.get("format", {})
    if res.returncode != 0 or not fmt:
        text = res.stderr.decode("utf-8", "replace")
        why = ffmpeg_resource_error(text, res.returncode, (cmd[-1], os.path.abspath(path)))
        if why:  # no file handle left to open it with: the machine's fault, not the file's
            raise OutOfResources(f"ffprobe: {why}")
        err = text.strip().splitlines()
        refused = [ln for ln in err if "not on whitelist" in ln]
        if refused:  # "[hls @ 0x...] Format not on whitelist ..."
            fmt = refused[0].lstrip("[").split(" @", 1)[0]
            raise ProbeError("unsupported_container", f"{fmt}: not a self-contained video container")
        reason = "truncated" if looks_like_container(head) else "not_a_video"
        raise ProbeError(reason, err[-1] if err else "ffprobe failed")
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        raise ProbeError("not_a_video", f"no video stream (format {fmt.get('format_name')})")
    v = videos[0]
    if v.get("codec_name") in (None, "", "none"):
        raise ProbeError("decode_error", "unknown video codec")
    audios = [s for s in streams if s.get("codec_type") == "audio"
              and s.get("codec_name") not in (None, "", "none")]
    a = audios[0] if audios else None
    w, h = display_size(v)
    return Probe(
        duration=_float(v.get("duration")) or _float(fmt.get("duration")),
        video_index=int(v["index"]), video_codec=str(v.get("codec_name")), width=w, height=h,
        fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")),
        audio_index=int(a["index"]) if a else None,
        audio_codec=str(a.get("codec_name")) if a else None,
        audio_channels=int(a.get("channels") or 0) if a else 0,
        audio_rate=int(a.get("sample_rate") or 0) if a else 0,
        format_name=str(fmt.get("format_name", "")))
