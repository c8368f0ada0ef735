"""The shard stage's typed config (its own module so workers import it without the stage)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from pipeline.config import MISSING, ConfigError
from pipeline.shard.clip_spans import frames_of
from pipeline.shard.corpus import VIDEO_EXTENSIONS
from pipeline.shard.layouts import READERS

# keys whose value changes the bytes of a shard: part of each shard's fingerprint
OUTPUT_KEYS = ("name", "clip_seconds", "stride_seconds", "min_clip_seconds", "min_seconds", "fps",
               "short_side", "audio_rate", "require_audio", "silence_rms", "keep_truncated",
               "crf", "preset", "scale_flags", "encoder_threads", "confine")


@dataclass
class ShardConfig:
    input: str = field(default=MISSING, metadata={"help": "folder tree of videos (class = parent folder, optional splits.csv: path, split), a .csv/.jsonl manifest with 'path' and optional caption, label, start, end, boxes, or a dataset folder as distributed (see dataset)"})
    dataset: str = field(default="generic", metadata={"choices": tuple(READERS), "help": "layout of input: generic (folder or manifest) | ucf101 (UCF-101/ + ucfTrainTestlist/) | hmdb51 (class folders + testTrainMulti_7030_splits/) | esc50 (audio/ + meta/esc50.csv); a split corpus writes one shard set per subset: output/train, output/test (ucf101, hmdb51, generic), output/fold1..fold5 (esc50), output/<split> (splits.csv)"})
    split: Optional[int] = field(default=None, metadata={"help": "ucf101 / hmdb51: official split 1, 2 or 3 (unset: 1)", "min": 1, "max": 3})
    split_lists: str = field(default="", metadata={"help": "ucf101 / hmdb51: the folder of the official split lists (ucfTrainTestlist/, testTrainMulti_7030_splits/) when it is not where the layout expects it; input is then the folder of the class folders (e.g. input=HMDB/videos split_lists=HMDB/testTrainMulti_7030_splits); empty: inside input"})
    holdout: Optional[float] = field(default=None, metadata={"help": "generic: fraction of each class's files held out in output/test (stratified by label, a file's clips never straddle); unset: 0.2 for a folder without splits.csv, 0 for a manifest; 0 = one shard set in output/", "min": 0, "below": 1})
    holdout_seed: int = field(default=0, metadata={"help": "generic: seed of the held-out choice (a hash of seed and path: few files move as files are added)", "min": 0})
    output: str = field(default=MISSING, metadata={"help": "output folder: NAME-000000.tar, NAME-000000.stats.json, index.json, config.yaml"})
    name: str = field(default="shard", metadata={"help": "shard file name prefix", "pattern": r"[A-Za-z0-9][A-Za-z0-9_.-]*"})
    videos_per_shard: int = field(default=32, metadata={"help": "input videos per shard (sorted inputs, fixed count: the assignment never depends on the run)", "min": 1})
    clip_seconds: Optional[float] = field(default=None, metadata={"help": "clip length, seconds; unset: 5 for esc50 (one clip per recording), else 4", "above": 0})
    stride_seconds: float = field(default=0.0, metadata={"help": "time between clip starts, seconds; 0 = clip_seconds (back to back)", "min": 0})
    min_clip_seconds: float = field(default=1.0, metadata={"help": "the last, shorter clip of a video is kept if at least this long", "min": 0})
    min_seconds: float = field(default=1.0, metadata={"help": "inputs shorter than this are skipped (reason too_short)", "min": 0})
    fps: int = field(default=25, metadata={"help": "output frame rate", "min": 1})
    short_side: int = field(default=128, metadata={"help": "output short side in pixels (even); the long side keeps the aspect, rounded to even", "min": 2})
    audio_rate: int = field(default=16000, metadata={"help": "output audio sample rate, Hz (mono 16-bit WAV)", "min": 8000, "max": 192000})
    require_audio: Optional[bool] = field(default=None, metadata={"help": "skip inputs without an audio stream or with silent audio; false: keep them as video-only clips (no .wav); unset: false for ucf101/hmdb51 (many videos have no sound), else true"})
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
        if self.clip_seconds is not None and frames_of(self.clip_seconds, self.fps) < 1:
            raise ConfigError(f"{self.clip_seconds} s is not one frame at fps={self.fps}", key="clip_seconds")
        if self.stride_seconds and frames_of(self.stride_seconds, self.fps) < 1:
            raise ConfigError(f"{self.stride_seconds} s is not one frame at fps={self.fps} "
                              "(0 = back to back)", key="stride_seconds")
        head, _, tail = self.slice.partition("/")
        if self.slice and not int(head) < int(tail):
            raise ConfigError(f"{self.slice!r}: need i/n with 0 <= i < n", key="slice")


# what a key left unset means, unless the dataset layout says otherwise (Layout.defaults)
UNSET_DEFAULTS = {"clip_seconds": 4.0, "require_audio": True}


def with_defaults(cfg: ShardConfig, layout_defaults: dict) -> ShardConfig:
    """``cfg`` with every unset key given the layout's value, else the general default."""
    values = {**UNSET_DEFAULTS, **layout_defaults}
    return replace(cfg, **{k: v for k, v in values.items() if getattr(cfg, k) is None})
