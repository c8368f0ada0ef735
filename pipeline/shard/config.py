"""The shard stage's typed config (its own module so workers import it without the stage)."""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import MISSING, ConfigError
from pipeline.shard.clip_spans import frames_of
from pipeline.shard.corpus import VIDEO_EXTENSIONS

# keys whose value changes the bytes of a shard: part of each shard's fingerprint
OUTPUT_KEYS = ("name", "clip_seconds", "stride_seconds", "min_clip_seconds", "min_seconds", "fps",
               "short_side", "audio_rate", "require_audio", "silence_rms", "keep_truncated",
               "crf", "preset", "scale_flags", "encoder_threads", "confine")


@dataclass
class ShardConfig:
    input: str = field(default=MISSING, metadata={"help": "folder tree of videos (class = parent folder) or a .csv/.jsonl manifest with 'path' and optional caption, label, start, end, boxes"})
    output: str = field(default=MISSING, metadata={"help": "output folder: NAME-000000.tar, NAME-000000.stats.json, index.json, config.yaml"})
    name: str = field(default="shard", metadata={"help": "shard file name prefix", "pattern": r"[A-Za-z0-9][A-Za-z0-9_.-]*"})
    videos_per_shard: int = field(default=32, metadata={"help": "input videos per shard (sorted inputs, fixed count: the assignment never depends on the run)", "min": 1})
    clip_seconds: float = field(default=4.0, metadata={"help": "clip length, seconds", "above": 0})
    stride_seconds: float = field(default=0.0, metadata={"help": "time between clip starts, seconds; 0 = clip_seconds (back to back)", "min": 0})
    min_clip_seconds: float = field(default=1.0, metadata={"help": "the last, shorter clip of a video is kept if at least this long", "min": 0})
    min_seconds: float = field(default=1.0, metadata={"help": "inputs shorter than this are skipped (reason too_short)", "min": 0})
    fps: int = field(default=25, metadata={"help": "output frame rate", "min": 1})
    short_side: int = field(default=128, metadata={"help": "output short side in pixels (even); the long side keeps the aspect, rounded to even", "min": 2})
    audio_rate: int = field(default=16000, metadata={"help": "output audio sample rate, Hz (mono 16-bit WAV)", "min": 8000, "max": 192000})
    require_audio: bool = field(default=True, metadata={"help": "skip inputs without an audio stream or with silent audio; false: keep them as video-only clips (no .wav)"})
    silence_rms: float = field(default=1e-4, metadata={"help": "audio whose RMS over the whole input is below this (1.0 = full scale) counts as silent", "min": 0, "max": 1})
    keep_truncated: bool = field(default=False, metadata={"help": "keep the decodable part of a truncated input (status ok, note truncated) instead of failing it"})
    crf: int = field(default=23, metadata={"help": "x264 constant rate factor (lower = better, bigger)", "min": 0, "max": 51})
    preset: str = field(default="veryfast", metadata={"help": "x264 preset"})
    encoder_threads: int = field(default=2, metadata={"help": "x264 threads per encoder; fixed (x264 output depends on the count, never on the machine)", "min": 1})
    scale_flags: str = field(default="area", metadata={"help": "ffmpeg scaler (area: exact pixel averaging when shrinking, and cheap; bicubic, lanczos, ...)"})
    confine: bool | None = field(default=None, metadata={"help": "inputs must resolve (symbolic links followed) inside the corpus root: the input folder, or the manifest's folder; others get status failed outside_corpus. Unset: on for folders, off for manifests"})
    labels_from_folders: bool = field(default=True, metadata={"help": "folder input: label = name of the file's parent folder (none for files at the top)"})
    extensions: list[str] = field(default_factory=lambda: list(VIDEO_EXTENSIONS), metadata={"help": "folder input: file extensions taken as videos", "pattern": r"\.?[A-Za-z0-9]+"})
    workers: int = field(default=0, metadata={"help": "processes, each writing one shard at a time (0 = one per CPU core)", "min": 0})
    ffmpeg_threads: int = field(default=0, metadata={"help": "decoder threads per ffmpeg (0 = ffmpeg decides)", "min": 0})
    slice: str = field(default="", metadata={"help": "i/n: process only shards with index % n == i (one SLURM array task each); empty = all", "pattern": r"(\d+/\d+)?"})
    merge_only: bool = field(default=False, metadata={"help": "only (re)build index.json from the stats files; fails if a shard is incomplete"})
    input_timeout: float = field(default=3600.0, metadata={"help": "seconds one input may take before its ffmpeg is killed (reason timeout)", "above": 0})
    ffmpeg: str = field(default="ffmpeg", metadata={"help": "ffmpeg executable"})
    ffprobe: str = field(default="ffprobe", metadata={"help": "ffprobe executable"})
    tmp_dir: str = field(default="", metadata={"help": "scratch folder for decoded audio and encoded clips; empty = inside output"})

    def check(self) -> None:
        if self.short_side % 2:
            raise ConfigError(f"{self.short_side}; H.264 (yuv420p) needs an even size", key="short_side")
        if frames_of(self.clip_seconds, self.fps) < 1:
            raise ConfigError(f"{self.clip_seconds} s is not one frame at fps={self.fps}", key="clip_seconds")
        if self.stride_seconds and frames_of(self.stride_seconds, self.fps) < 1:
            raise ConfigError(f"{self.stride_seconds} s is not one frame at fps={self.fps} "
                              "(0 = back to back)", key="stride_seconds")
        head, _, tail = self.slice.partition("/")
        if self.slice and not int(head) < int(tail):
            raise ConfigError(f"{self.slice!r}: need i/n with 0 <= i < n", key="slice")
