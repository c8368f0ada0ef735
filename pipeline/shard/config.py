"""The shard stage's typed config (its own module so workers import it without the stage)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import MISSING
from pipeline.shard.corpus import VIDEO_EXTENSIONS

# keys whose value changes the bytes of a shard: part of each shard's fingerprint
OUTPUT_KEYS = ("name", "clip_seconds", "stride_seconds", "min_clip_seconds", "min_seconds", "fps",
               "short_side", "audio_rate", "require_audio", "silence_rms", "keep_truncated",
               "crf", "preset", "scale_flags", "encoder_threads")


@dataclass
class ShardConfig:
    input: str = field(default=MISSING, metadata={"help": "folder tree of videos (class = parent folder) or a .csv/.jsonl manifest with 'path' and optional caption, label, start, end, boxes"})
    output: str = field(default=MISSING, metadata={"help": "output folder: NAME-000000.tar, NAME-000000.stats.json, index.json, config.yaml"})
    name: str = field(default="shard", metadata={"help": "shard file name prefix"})
    videos_per_shard: int = field(default=32, metadata={"help": "input videos per shard (sorted inputs, fixed count: the assignment never depends on the run)"})
    clip_seconds: float = field(default=4.0, metadata={"help": "clip length, seconds"})
    stride_seconds: float = field(default=0.0, metadata={"help": "time between clip starts, seconds; 0 = clip_seconds (back to back)"})
    min_clip_seconds: float = field(default=1.0, metadata={"help": "the last, shorter clip of a video is kept if at least this long"})
    min_seconds: float = field(default=1.0, metadata={"help": "inputs shorter than this are skipped (reason too_short)"})
    fps: int = field(default=25, metadata={"help": "output frame rate"})
    short_side: int = field(default=128, metadata={"help": "output short side in pixels (even); the long side keeps the aspect, rounded to even"})
    audio_rate: int = field(default=16000, metadata={"help": "output audio sample rate, Hz (mono 16-bit WAV)"})
    require_audio: bool = field(default=True, metadata={"help": "skip inputs without an audio stream or with silent audio; false: keep them as video-only clips (no .wav)"})
    silence_rms: float = field(default=1e-4, metadata={"help": "audio whose RMS over the whole input is below this (1.0 = full scale) counts as silent"})
    keep_truncated: bool = field(default=False, metadata={"help": "keep the decodable part of a truncated input (status ok, note truncated) instead of failing it"})
    crf: int = field(default=23, metadata={"help": "x264 constant rate factor (lower = better, bigger)"})
    preset: str = field(default="veryfast", metadata={"help": "x264 preset"})
    encoder_threads: int = field(default=2, metadata={"help": "x264 threads per encoder; fixed (x264 output depends on the count, never on the machine)"})
    scale_flags: str = field(default="area", metadata={"help": "ffmpeg scaler (area: exact pixel averaging when shrinking, and cheap; bicubic, lanczos, ...)"})
    labels_from_folders: bool = field(default=True, metadata={"help": "folder input: label = name of the file's parent folder (none for files at the top)"})
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS), metadata={"help": "folder input: file extensions taken as videos"})
    workers: int = field(default=0, metadata={"help": "processes, each writing one shard at a time (0 = one per CPU core)"})
    ffmpeg_threads: int = field(default=0, metadata={"help": "decoder threads per ffmpeg (0 = ffmpeg decides)"})
    slice: str = field(default="", metadata={"help": "i/n: process only shards with index % n == i (one SLURM array task each); empty = all"})
    merge_only: bool = field(default=False, metadata={"help": "only (re)build index.json from the stats files; fails if a shard is incomplete"})
    input_timeout: float = field(default=3600.0, metadata={"help": "seconds one input may take before its ffmpeg is killed (reason timeout)"})
    ffmpeg: str = field(default="ffmpeg", metadata={"help": "ffmpeg executable"})
    ffprobe: str = field(default="ffprobe", metadata={"help": "ffprobe executable"})
    tmp_dir: str = field(default="", metadata={"help": "scratch folder for decoded audio and encoded clips; empty = inside output"})
