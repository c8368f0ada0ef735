"""One input video (or sound recording) -> its samples, or the one status that says why it
has none.

Every input ends with exactly one status: "ok", "failed" (the file is broken or refused:
missing, empty_file, not_a_video, truncated, decode_error, bad_segment, timeout,
internal_error, unsupported_container (a playlist or list of other files),
outside_corpus (with ``confine``, a path or symlink leading out of the corpus root)) or
"skipped" (usable but excluded by policy: too_short, no_audio_stream, silent_audio).
Nothing is emitted until every decision is made, so a rejected input leaves no
samples behind, and no exception from one input reaches the shard, except the machine
running out of disk, quota, file handles or memory (``pipeline.shard.resources``): that
is not the input's fault, so it fails the shard instead of giving the input a status.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from typing import Callable

from pipeline.io.wav import pcm_wav
from pipeline.shard.clip_spans import clip_spans, frames_of
from pipeline.shard.corpus import InputItem, confinement_root, is_inside
from pipeline.shard.keys import input_prefix, sample_key
from pipeline.shard.probe import ProbeError, output_size, probe
from pipeline.shard.audio_track import decode_track, rms, track_rms, track_window
from pipeline.shard.config import ShardConfig
from pipeline.shard.resources import OutOfResources, describe, resource_errno
from pipeline.shard.transcode import Decoded, EncodedClip, TranscodeSettings, transcode

log = logging.getLogger(__name__)
Emit = Callable[[str, list[tuple[str, bytes]]], None]
FAILED = {"missing", "empty_file", "not_a_video", "truncated", "decode_error", "bad_segment",
          "timeout", "internal_error", "unsupported_container", "outside_corpus"}


class SinkError(Exception):
    """Writing a sample failed (disk full, ...): the shard must stop, not the input fail."""


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail
        self.status = "failed" if reason in FAILED else "skipped"


def file_sha1(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def rebase_boxes(boxes: list[list[float]], start: float, end: float) -> list[list[float]]:
    """Boxes with source time in [start, end), their time made relative to ``start``."""
    eps = 1e-6
    return [[round(max(b[0] - start, 0.0), 4), *b[1:]] for b in boxes
            if start - eps <= b[0] < end - eps]


def process_input(item: InputItem, cfg: ShardConfig, classes: dict[str, int], tmp_dir: str,
                  emit: Emit) -> dict:
    """Emit ``(key, [(ext, bytes), ...])`` per clip; return the input's index entry."""
    entry = {"path": item.path, "status": "ok", "reason": None, "clips": 0, "seconds": 0.0}
    try:
        entry.update(_process(item, cfg, classes, tmp_dir, emit))
    except OutOfResources as exc:
        raise OutOfResources(f"input {item.path}: {exc}") from None
    except SinkError as exc:
        if resource_errno(exc):
            raise OutOfResources(f"input {item.path}: {describe(exc)}") from None
        raise
    except (Rejected, ProbeError) as rej:
        entry.update(status="failed" if rej.reason in FAILED else "skipped", reason=rej.reason)
        if rej.detail:  # without the absolute path ffmpeg prefixes its messages with
            for name in (f"file:{os.path.abspath(item.abspath)}: ", f"{item.abspath}: "):
                rej.detail = rej.detail.replace(name, "")
            entry["detail"] = rej.detail[-300:]
    except Exception as exc:  # a bug or an OS error on one input must not stop the run
        if resource_errno(exc):  # ... unless the machine ran out: then the input is not to blame
            raise OutOfResources(f"input {item.path}: {describe(exc)}") from None
        log.exception("input %s: unexpected error", item.path)
        entry.update(status="failed", reason="internal_error", detail=repr(exc)[-300:])
    return entry


def _expected_seconds(item: InputItem, duration: float | None) -> float | None:
    start = item.start or 0.0
    if duration is not None and start >= duration:
        raise Rejected("bad_segment", f"start {start} s is past the end ({duration:.2f} s)")
    end = item.end if item.end is not None else duration
    if end is None:
        return None
    return (min(end, duration) if duration is not None else end) - start


def _process(item: InputItem, cfg: ShardConfig, classes: dict[str, int], tmp_dir: str,
             emit: Emit) -> dict:
    path = item.abspath
    root = confinement_root(cfg.input, cfg.confine)
    if root and not is_inside(path, root):
        raise Rejected("outside_corpus", f"resolves outside {root} (confine=false allows it)")
    if not os.path.exists(path):
        raise Rejected("missing", "no such file")
    if os.path.isdir(path):
        raise Rejected("not_a_video", "is a folder")
    if os.path.getsize(path) == 0:
        raise Rejected("empty_file")
    if item.audio_only:
        return _process_audio(item, cfg, classes, tmp_dir, emit)
    info = probe(path, cfg.ffprobe)
    expected = _expected_seconds(item, info.duration)
    if expected is not None and expected < cfg.min_seconds:
        raise Rejected("too_short", f"{expected:.2f} s < min_seconds {cfg.min_seconds}")
    if info.audio_index is None and cfg.require_audio:
        raise Rejected("no_audio_stream")
    width, height = output_size(info.width, info.height, cfg.short_side)
    fps = cfg.fps
    settings = TranscodeSettings(
        fps=fps, width=width, height=height, audio_rate=cfg.audio_rate,
        clip_frames=frames_of(cfg.clip_seconds, fps),
        stride_frames=frames_of(cfg.stride_seconds or cfg.clip_seconds, fps),
        min_frames=max(frames_of(cfg.min_clip_seconds, fps), 1), crf=cfg.crf, preset=cfg.preset,
        scale_flags=cfg.scale_flags, scale_first=info.fps is not None and info.fps < fps,
        encoder_threads=cfg.encoder_threads,
        threads=cfg.ffmpeg_threads, ffmpeg=cfg.ffmpeg, timeout=cfg.input_timeout)
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="input.") as work, \
            open(os.path.join(work, "clips.bin"), "w+b") as spool:
        audio_path = os.path.join(work, "audio.s16")
        dec = transcode(path, settings, info.video_index, info.audio_index, spool, audio_path,
                        start=item.start, duration=(item.end - (item.start or 0.0))
                        if item.end is not None else None, expected_seconds=expected)
        note = _check(dec, expected, cfg, fps)
        has_audio = info.audio_index is not None
        if has_audio and (dec.audio_samples == 0 or track_rms(audio_path) < cfg.silence_rms):
            if cfg.require_audio:
                raise Rejected("silent_audio")
            has_audio, note = False, note or "silent_audio"
        elif not has_audio:
            note = note or "no_audio_stream"
        if not dec.clips:
            raise Rejected("too_short", f"{dec.n_frames} frames decoded, no clip of "
                                        f">= {cfg.min_clip_seconds} s")
        sha1, prefix = file_sha1(path), input_prefix(item.path, item.identity)
        for k, clip in enumerate(dec.clips):
            spool.seek(clip.offset)
            key = sample_key(prefix, k)
            members = _members(item, cfg, classes, key, k, clip, spool.read(clip.length),
                               audio_path if has_audio else None, sha1, width, height)
            try:
                emit(key, members)
            except Exception as exc:
                raise SinkError(f"writing sample {key}: {exc}") from exc
    out = {"clips": len(dec.clips), "seconds": round(dec.n_frames / fps, 3),
           "clip_seconds": round(sum(c.n_frames for c in dec.clips) / fps, 3)}
    if note:
        out["note"] = note
    return out


def _labelled(item: InputItem, classes: dict[str, int]) -> list[tuple[str, bytes]]:
    members = []
    if item.caption is not None:
        members.append(("txt", item.caption.encode("utf-8")))
    if item.label is not None:
        members.append(("cls", str(classes[item.label]).encode("ascii")))
    return members


def _meta(item: InputItem, key: str, k: int, sha1: str, start: float, duration: float,
          rate: int | None, pcm: bytes) -> dict:
    """The json fields of every sample. ``video_id`` names the input, so all clips of one
    video share it (video-level metrics group by it); it is the key without the clip index."""
    return {"key": key, "video_id": key.rsplit("_", 1)[0], "source": item.path, "source_sha1": sha1,
            "clip_index": k, "start": round(start, 6), "duration": round(duration, 6),
            "audio_rate": rate, "has_audio": rate is not None, "audio_rms": round(rms(pcm), 6),
            "label": item.label, "caption": item.caption}


def _members(item: InputItem, cfg: ShardConfig, classes: dict[str, int], key: str, k: int,
             clip: EncodedClip, mp4: bytes, audio_path: str | None, sha1: str, width: int,
             height: int) -> list[tuple[str, bytes]]:
    """The tar members of one clip, in their fixed order: mp4, wav, txt, cls, json."""
    fps, rate = cfg.fps, cfg.audio_rate
    members = [("mp4", mp4)]
    pcm = b""
    if audio_path:
        first = clip.start_frame * rate // fps  # windows tile the track exactly
        pcm = track_window(audio_path, first, (clip.start_frame + clip.n_frames) * rate // fps - first)
        members.append(("wav", pcm_wav(pcm, rate)))
    members += _labelled(item, classes)
    start = (item.start or 0.0) + clip.start_frame / fps
    meta = {**_meta(item, key, k, sha1, start, clip.n_frames / fps, rate if audio_path else None, pcm),
            "has_video": True, "fps": fps, "n_frames": clip.n_frames, "width": width, "height": height}
    if item.boxes is not None:
        meta["boxes"] = rebase_boxes(item.boxes, start, start + clip.n_frames / fps)
    if item.extra:
        meta["extra"] = item.extra
    members.append(("json", json.dumps(meta).encode("utf-8")))
    return members


def _process_audio(item: InputItem, cfg: ShardConfig, classes: dict[str, int], tmp_dir: str,
                   emit: Emit) -> dict:
    """A sound recording (ESC-50): its track cut by the clip policy into ``.wav`` samples,
    no ``.mp4``; the same statuses as a video (no sound at all: skipped)."""
    rate = cfg.audio_rate
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="input.") as work:
        track = os.path.join(work, "audio.s16")
        dec = decode_track(item.abspath, track, rate, item.start,
                           item.end - (item.start or 0.0) if item.end is not None else None,
                           cfg.ffmpeg, cfg.ffmpeg_threads, cfg.input_timeout)
        if dec.timed_out:
            raise Rejected("timeout", f"ffmpeg ran longer than {cfg.input_timeout:.0f} s")
        if dec.audio_samples == 0:
            detail = dec.stderr.strip().splitlines()[-1] if dec.stderr.strip() else "no samples"
            raise Rejected("no_audio_stream" if "matches no streams" in detail else "decode_error",
                           detail)
        seconds = dec.audio_samples / rate
        if seconds < cfg.min_seconds:
            raise Rejected("too_short", f"{seconds:.2f} s < min_seconds {cfg.min_seconds}")
        if track_rms(track) < cfg.silence_rms:
            raise Rejected("silent_audio")
        spans = clip_spans(dec.audio_samples, max(round(cfg.clip_seconds * rate), 1),
                           max(round((cfg.stride_seconds or cfg.clip_seconds) * rate), 1),
                           max(round(cfg.min_clip_seconds * rate), 1))
        if not spans:
            raise Rejected("too_short", f"{seconds:.2f} s, no clip of >= {cfg.min_clip_seconds} s")
        sha1, prefix = file_sha1(item.abspath), input_prefix(item.path, item.identity)
        for k, (first, count) in enumerate(spans):
            key = sample_key(prefix, k)
            pcm = track_window(track, first, count)
            meta = {**_meta(item, key, k, sha1, (item.start or 0.0) + first / rate, count / rate,
                            rate, pcm), "has_video": False, "fps": None, "n_frames": 0,
                    "width": None, "height": None}
            if item.extra:
                meta["extra"] = item.extra
            try:
                emit(key, [("wav", pcm_wav(pcm, rate)), *_labelled(item, classes),
                           ("json", json.dumps(meta).encode("utf-8"))])
            except Exception as exc:
                raise SinkError(f"writing sample {key}: {exc}") from exc
    return {"clips": len(spans), "seconds": round(seconds, 3),
            "clip_seconds": round(sum(c for _, c in spans) / rate, 3)}


def _check(dec: Decoded, expected: float | None, cfg: ShardConfig, fps: int) -> str | None:
    """Classify a finished decode: timeout, nothing decodable, or cut short."""
    if dec.timed_out:
        raise Rejected("timeout", f"ffmpeg ran longer than {cfg.input_timeout:.0f} s")
    if dec.n_frames == 0:
        raise Rejected("decode_error", dec.stderr.strip().splitlines()[-1] if dec.stderr.strip()
                       else f"ffmpeg exit {dec.returncode}, no frames")
    got = dec.n_frames / fps
    short = expected is not None and got < expected - max(0.5, 0.05 * expected)
    if short and (dec.stderr.strip() or dec.returncode != 0):
        if not cfg.keep_truncated:
            raise Rejected("truncated", f"decoded {got:.2f} s of {expected:.2f} s")
        return "truncated"
    return None
