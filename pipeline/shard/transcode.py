"""Decode an input once and cut it into encoded clips plus one PCM audio track.

One ffmpeg process per input does all the work on the decoded frames — fps conversion,
scaling, audio resampling and down-mixing to s16le mono (written to a file) — so the
input is decoded exactly once. Clips are encoded one of two ways:

* back-to-back clips (stride = clip length, the default): ffmpeg itself encodes with
  x264, forces a keyframe at every clip start and cuts with its segment muxer. No frame
  leaves ffmpeg, so the cost is that of a plain ``ffmpeg -i in out.mp4``.
* overlapping or spaced clips: ffmpeg streams raw yuv420p frames through a pipe and each
  clip gets its own PyAV encoder (:class:`ClipEncoder`), so a frame can go to several.

Both use the same x264 options (``pipeline.io.x264``: a fixed number of threads, since
x264 is deterministic for a given count and the machine's core count never enters; its
AVX-512 kernels capped) and bitexact flags: the bytes are a function of the input, the
settings and the encoder versions (which the shard fingerprint records).
Timing: ffmpeg shifts the input so its earliest stream starts at 0; ``fps=start_time=0``
and ``aresample=first_pts=0`` pad a later-starting stream, so frame ``i`` and audio
sample ``i * rate / fps`` are the same instant.
"""
from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import av
import numpy as np

from pipeline.io.x264 import x264_cli_args
from pipeline.shard.clip_encoder import ClipEncoder
from pipeline.shard.clip_spans import clip_spans
from pipeline.shard.probe import input_args
from pipeline.shard.resources import OutOfResources, ffmpeg_resource_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscodeSettings:
    fps: int
    width: int
    height: int
    audio_rate: int
    clip_frames: int
    stride_frames: int
    min_frames: int
    crf: int = 23
    preset: str = "veryfast"
    encoder_threads: int = 2        # fixed x264 threads: the bytes depend on the count only
    scale_flags: str = "area"       # swscale algorithm; area: exact averaging when shrinking
    scale_first: bool = False       # scale before fps conversion (input slower than target)
    threads: int = 0                # ffmpeg decoder threads (0: ffmpeg decides)
    ffmpeg: str = "ffmpeg"
    timeout: float = 3600.0


@dataclass
class EncodedClip:
    start_frame: int
    n_frames: int
    offset: int                     # where its mp4 bytes lie in the spool file
    length: int


@dataclass
class Decoded:
    n_frames: int = 0
    clips: list[EncodedClip] = field(default_factory=list)
    audio_samples: int = 0          # s16 mono samples written to the audio file
    returncode: int = 0
    timed_out: bool = False
    stderr: str = ""


def kill_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when its parent dies (Linux), so a ``kill -9``
    of the stage leaves no orphan ffmpeg or worker writing into the output folder."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def video_filters(s: TranscodeSettings) -> str:
    """fps conversion and scaling, the cheaper order first: shrink frames before an fps
    filter duplicates them, drop frames before scaling the survivors."""
    fps = f"fps=fps={s.fps}:start_time=0"
    scale = f"scale={s.width}:{s.height}:flags={s.scale_flags},setsar=1"
    return f"{scale},{fps}" if s.scale_first else f"{fps},{scale}"


def segment_frames(s: TranscodeSettings, seconds: float | None) -> str | None:
    """Frame numbers to cut at (``-segment_frames``), when ffmpeg can cut the clips itself:
    back-to-back clips of an input whose length is known. Cutting by frame number, at a
    keyframe forced there, is exact; cutting by time is not (x264 places extra keyframes
    at scene cuts, and the segment muxer may take one a frame or two early)."""
    if s.stride_frames != s.clip_frames or not seconds:
        return None
    n = int((seconds * 1.05 + 2) * s.fps) // s.clip_frames + 1  # too many cuts cost nothing
    cuts = ",".join(str(k * s.clip_frames) for k in range(1, n + 1))
    return cuts if len(cuts) < 100_000 else None  # one argv string must stay < 128 KiB


def ffmpeg_command(path: str, s: TranscodeSettings, video_index: int, audio_index: int | None,
                   audio_out: str | None, start: float | None = None,
                   duration: float | None = None, segments: str | None = None,
                   cuts: str = "") -> list[str]:
    """Video to ``segments`` (a file pattern, cut at frames ``cuts``) or raw frames on stdout."""
    cmd = [s.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if s.threads:
        cmd += ["-threads", str(s.threads)]
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    cmd += [*input_args(path), "-map_metadata", "-1", "-map_chapters", "-1",
            "-map", f"0:{video_index}", "-vf", video_filters(s), "-pix_fmt", "yuv420p"]
    if segments:
        c, g = s.clip_frames, s.fps
        cmd += ["-c:v", "libx264", *x264_cli_args(s.encoder_threads), "-preset", s.preset,
                "-crf", str(s.crf), "-g", str(g), "-keyint_min", str(g),
                "-force_key_frames", f"expr:not(mod(n,{g}))+not(mod(n,{c}))",
                "-flags:v", "+bitexact", "-fflags", "+bitexact", "-f", "segment",
                "-segment_frames", cuts, "-reset_timestamps", "1", "-segment_format", "mp4",
                segments]
    else:
        cmd += ["-f", "rawvideo", "pipe:1"]
    if audio_index is not None and audio_out:
        cmd += ["-map", f"0:{audio_index}", "-af", "aresample=async=1:first_pts=0",
                "-ac", "1", "-ar", str(s.audio_rate), "-f", "s16le", audio_out]
    return cmd


def _run(cmd: list[str], timeout: float, out: Decoded,
         consume: Callable[[BinaryIO], None] | None = None) -> None:
    """Run ffmpeg (stdout to ``consume`` if given) under a time limit; fill ``out``."""
    with tempfile.TemporaryFile() as err:  # a file: a chatty ffmpeg can never block on it
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=err,
                                stdout=subprocess.PIPE if consume else subprocess.DEVNULL,
                                preexec_fn=kill_with_parent)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            if consume:
                try:  # 1 MiB: ffmpeg decodes ahead while a clip is encoded (64 KiB ~ 1 frame)
                    fcntl.fcntl(proc.stdout.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
                except OSError:
                    pass
                consume(proc.stdout)
        finally:
            if proc.stdout:
                proc.stdout.close()
            out.returncode = proc.wait()
            out.timed_out = not timer.is_alive() and out.returncode < 0
            timer.cancel()
        err.seek(0)
        out.stderr = err.read()[-4000:].decode("utf-8", "replace")
    why = ffmpeg_resource_error(out.stderr, out.returncode, command_paths(cmd))
    if why:  # a full disk is not a broken input: the shard fails, the re-run redoes it
        raise OutOfResources(why)


def command_paths(cmd: list[str]) -> tuple[str, ...]:
    """The file names in an ffmpeg command (as ffmpeg may echo them in its messages)."""
    paths = [a for a in cmd if os.sep in a]
    return tuple(paths + [a[len("file:"):] for a in paths if a.startswith("file:")])


def _append(spool: BinaryIO, start: int, n_frames: int, data: bytes) -> EncodedClip:
    spool.seek(0, 2)
    offset = spool.tell()
    spool.write(data)
    return EncodedClip(start, n_frames, offset, len(data))


def _segment_clips(s: TranscodeSettings, folder: Path, spool: BinaryIO, out: Decoded) -> None:
    """Segments -> clips. Segment k must hold frames [k C, (k+1) C): checked, never assumed."""
    files = sorted(folder.glob("seg_*.mp4"))
    counts = []
    for f in files:
        try:
            with av.open(str(f)) as c:
                counts.append(c.streams.video[0].frames if c.streams.video else 0)
        except av.error.FFmpegError:  # unfinished last segment of a failed run
            break
    files = files[:len(counts)]
    if any(n != s.clip_frames for n in counts[:-1]):
        raise ValueError(f"segments of {counts} frames, expected {s.clip_frames} each")
    out.n_frames = sum(counts)
    keep = dict(clip_spans(out.n_frames, s.clip_frames, s.stride_frames, s.min_frames))
    for k, (f, n) in enumerate(zip(files, counts)):
        if keep.get(k * s.clip_frames) == n:
            out.clips.append(_append(spool, k * s.clip_frames, n, f.read_bytes()))


def _pipe_clips(s: TranscodeSettings, spool: BinaryIO, out: Decoded) -> Callable[[BinaryIO], None]:
    """Consumer of raw frames: a PyAV encoder per clip, tails judged at the end."""
    frame_bytes = s.width * s.height * 3 // 2

    def consume(pipe: BinaryIO) -> None:
        active: list[tuple[int, ClipEncoder]] = []
        while len(buf := pipe.read(frame_bytes)) == frame_bytes:
            frame = np.frombuffer(buf, np.uint8).reshape(s.height * 3 // 2, s.width)
            if out.n_frames % s.stride_frames == 0:
                active.append((out.n_frames, ClipEncoder(s.width, s.height, s.fps, s.crf,
                                                         s.preset, threads=s.encoder_threads)))
            for _, enc in active:
                enc.add(frame)
            for first, enc in [a for a in active if a[1].n_frames == s.clip_frames]:
                out.clips.append(_append(spool, first, enc.n_frames, enc.finish()))
            active = [a for a in active if a[1].n_frames < s.clip_frames]
            out.n_frames += 1
        keep = set(clip_spans(out.n_frames, s.clip_frames, s.stride_frames, s.min_frames))
        for first, enc in active:  # tails: kept only when the clip policy says so
            if (first, enc.n_frames) in keep:
                out.clips.append(_append(spool, first, enc.n_frames, enc.finish()))
            else:
                enc.abort()
    return consume


def transcode(path: str, s: TranscodeSettings, video_index: int, audio_index: int | None,
              spool: BinaryIO, audio_out: str | None, start: float | None = None,
              duration: float | None = None, expected_seconds: float | None = None) -> Decoded:
    """Run ffmpeg on ``path``; clips' mp4 bytes go to ``spool``, audio to ``audio_out``.

    ``expected_seconds`` (the probed length) enables segment mode; should ffmpeg's cuts
    ever not match the clip policy, the input is redone through the pipe, never kept."""
    out = Decoded()
    cuts = segment_frames(s, expected_seconds)
    if cuts:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(audio_out or "") or None) as tmp:
            cmd = ffmpeg_command(path, s, video_index, audio_index, audio_out, start, duration,
                                 segments=os.path.join(tmp, "seg_%06d.mp4"), cuts=cuts)
            _run(cmd, s.timeout, out)
            try:
                if not out.timed_out:
                    _segment_clips(s, Path(tmp), spool, out)
            except ValueError as err:
                log.warning("%s: %s; re-encoding through the pipe", path, err)
                out = Decoded()
                cuts = None
    if not cuts:
        cmd = ffmpeg_command(path, s, video_index, audio_index, audio_out, start, duration)
        _run(cmd, s.timeout, out, _pipe_clips(s, spool, out))
    out.clips.sort(key=lambda c: c.start_frame)
    if audio_out and audio_index is not None and os.path.exists(audio_out):
        out.audio_samples = os.path.getsize(audio_out) // 2
    return out
