"""``python -m pipeline bench shard --corpus DIR --json OUT.json``: shard stage vs plain ffmpeg.

The peer, run in the same process on the same inputs with the same parallelism, is the
plain ffmpeg command line producing the same targets (fps, size, x264 preset/crf/GOP,
mono s16 WAV at the target rate) as one file per input: the limit of this machine for
this transcode. ``ratio`` = our input seconds/s / ffmpeg's. ``--cut-from FILE --pieces
N`` first cuts N pieces of ``--piece-seconds`` from a long film (stream copy, no
re-encode) into the corpus folder; ``--extra DIR`` links other real clips in.
``cpu_ratio`` (ffmpeg CPU seconds / ours) is reported too: on a machine shared with
other work it is steadier than the wall-clock ratio.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import MISSING, load_config
from pipeline.io.atomic import commit, temp_path, write_json
from pipeline.shard.corpus import read_corpus
from pipeline.shard.probe import ProbeError, output_size, probe
from pipeline.shard.driver import ShardConfig
from pipeline.shard.driver import run as run_shard

log = logging.getLogger(__name__)


@dataclass
class Config:
    corpus: str = field(default=MISSING, metadata={"help": "folder of videos to shard (created when cut_from is set)"})
    cut_from: str = field(default="", metadata={"help": "long video to cut into pieces inside corpus/ first (e.g. ../shared/media/video/big_buck_bunny_full.mp4)"})
    pieces: int = field(default=6, metadata={"help": "number of pieces cut from cut_from", "min": 1})
    piece_seconds: float = field(default=60.0, metadata={"help": "length of each piece, seconds", "above": 0})
    extra: str = field(default="", metadata={"help": "comma-separated folders of other real clips linked into corpus/extra/ (the cut_from film excepted)"})
    workers: int = field(default=0, metadata={"help": "shard processes and concurrent ffmpeg peers (0 = CPU cores)", "min": 0})
    videos_per_shard: int = field(default=1, metadata={"help": "inputs per shard (small, so every worker has shards)", "min": 1})
    clip_seconds: float = field(default=4.0, metadata={"help": "clip length of the shard stage", "above": 0})
    fps: int = field(default=25, metadata={"help": "target frame rate (both)", "min": 1})
    short_side: int = field(default=128, metadata={"help": "target short side (both)", "min": 2})
    audio_rate: int = field(default=16000, metadata={"help": "target audio rate (both)", "min": 8000, "max": 192000})
    crf: int = field(default=23, metadata={"help": "x264 crf (both)", "min": 0, "max": 51})
    preset: str = field(default="veryfast", metadata={"help": "x264 preset (both)"})
    scale_flags: str = field(default="area", metadata={"help": "ffmpeg scaler (both)"})
    repeats: int = field(default=2, metadata={"help": "rounds, in ABBA order (ffmpeg, ours, ours, ffmpeg, ...) so a drifting machine load favours neither; the best of each counts", "min": 1})
    scratch: str = field(default="", metadata={"help": "folder for the outputs (default: a temporary folder, removed)"})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def cut_corpus(src: str, dest: Path, pieces: int, seconds: float) -> list[Path]:
    """Pieces ``piece_000.mp4 ...`` of ``src`` by stream copy (cuts at keyframes, fast)."""
    dest.mkdir(parents=True, exist_ok=True)
    stem = Path(src).stem
    out = []
    for i in range(pieces):
        path = dest / f"{stem}_{i:03d}.mp4"
        if not path.exists():
            tmp = temp_path(path)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{i * seconds}",
                            "-t", f"{seconds}", "-i", src, "-c", "copy", "-avoid_negative_ts",
                            "make_zero", "-f", "mp4", str(tmp)], check=True)
            commit(tmp, path)
        out.append(path)
    return out


def link_extra(folders: str, dest: Path, skip: str = "") -> None:
    """Symlink the videos of comma-separated folders into ``dest/extra`` (not ``skip``,
    the film the pieces were cut from)."""
    (dest / "extra").mkdir(parents=True, exist_ok=True)
    for folder in [f for f in folders.split(",") if f]:
        for item in read_corpus(folder, labels_from_folders=False):
            if skip and os.path.realpath(item.abspath) == os.path.realpath(skip):
                continue
            link = dest / "extra" / Path(item.path).name
            if not link.exists():
                os.symlink(os.path.abspath(item.abspath), link)


def _ffmpeg_command(cfg: Config, path: str, out_dir: Path, i: int) -> list[str] | None:
    """The plain ffmpeg line for one input (probed before the clock starts)."""
    try:
        info = probe(path)
    except ProbeError:
        return None
    w, h = output_size(info.width, info.height, cfg.short_side)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-map", f"0:{info.video_index}",
           "-vf", f"fps={cfg.fps},scale={w}:{h}:flags={cfg.scale_flags},setsar=1", "-c:v", "libx264", "-preset", cfg.preset,
           "-crf", str(cfg.crf), "-g", str(cfg.fps), "-pix_fmt", "yuv420p", "-an",
           str(out_dir / f"{i:05d}.mp4")]
    if info.audio_index is not None:
        cmd += ["-map", f"0:{info.audio_index}", "-ac", "1", "-ar", str(cfg.audio_rate),
                str(out_dir / f"{i:05d}.wav")]
    return cmd


def _cpu() -> float:
    """CPU seconds of this process and every finished descendant (pool workers, ffmpegs):
    unlike wall time, barely affected by other users of a shared machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _ffmpeg_round(cfg: Config, paths: list[str], out_dir: Path, workers: int) -> tuple[float, float]:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cmds = [c for i, p in enumerate(paths) if (c := _ffmpeg_command(cfg, p, out_dir, i))]
    start, cpu = time.perf_counter(), _cpu()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda c: subprocess.run(c, capture_output=True), cmds))
    return time.perf_counter() - start, _cpu() - cpu


def _our_round(cfg: Config, out_dir: Path, workers: int) -> tuple[float, float, dict]:
    shutil.rmtree(out_dir, ignore_errors=True)
    scfg = load_config(ShardConfig, [], [
        f"input={cfg.corpus}", f"output={out_dir}", f"workers={workers}",
        f"videos_per_shard={cfg.videos_per_shard}", f"clip_seconds={cfg.clip_seconds}",
        f"fps={cfg.fps}", f"short_side={cfg.short_side}", f"audio_rate={cfg.audio_rate}",
        f"crf={cfg.crf}", f"preset={cfg.preset}", f"scale_flags={cfg.scale_flags}",
        "require_audio=false", "holdout=0"])
    start, cpu = time.perf_counter(), _cpu()
    result = run_shard(scfg)
    return time.perf_counter() - start, _cpu() - cpu, result


def run(cfg: Config) -> dict:
    corpus = Path(cfg.corpus)
    if cfg.cut_from:
        cut_corpus(cfg.cut_from, corpus, cfg.pieces, cfg.piece_seconds)
    if cfg.extra:
        link_extra(cfg.extra, corpus, skip=cfg.cut_from)
    items = read_corpus(str(corpus))
    paths = [it.abspath for it in items]
    seconds = 0.0
    for p in paths:
        try:
            seconds += probe(p).duration or 0.0
        except ProbeError:
            pass
        Path(p).read_bytes()  # warm the page cache so the first round is not penalised
    workers = cfg.workers or len(os.sched_getaffinity(0))
    scratch = Path(cfg.scratch or tempfile.mkdtemp(prefix="bench_shard."))
    load = os.getloadavg()[0]
    ours, peer, cpu, peer_cpu, result = [], [], [], [], {}
    try:
        for r in range(max(cfg.repeats, 1)):
            for side in (("ffmpeg", "ours") if r % 2 == 0 else ("ours", "ffmpeg")):  # ABBA
                if side == "ffmpeg":
                    wall, used = _ffmpeg_round(cfg, paths, scratch / "ffmpeg", workers)
                    peer.append(wall)
                    peer_cpu.append(used)
                else:
                    wall, used, result = _our_round(cfg, scratch / "shards", workers)
                    ours.append(wall)
                    cpu.append(used)
            log.info("round %d: ffmpeg %.1f s, shard stage %.1f s", r, peer[-1], ours[-1])
    finally:
        if not cfg.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    best, best_peer = min(ours), min(peer)
    out = {
        "videos_per_s": round(len(paths) / best, 3),
        "input_seconds_per_s": round(seconds / best, 2),
        "ffmpeg_videos_per_s": round(len(paths) / best_peer, 3),
        "ffmpeg_input_seconds_per_s": round(seconds / best_peer, 2),
        "ratio": round(best_peer / best, 3),
        "inputs": len(paths), "input_seconds": round(seconds, 2), "clips": result.get("clips"),
        "ok": result.get("ok"), "wall_s": [round(w, 2) for w in ours],
        "ffmpeg_wall_s": [round(w, 2) for w in peer],
        "cpu_s": [round(c, 2) for c in cpu], "ffmpeg_cpu_s": [round(c, 2) for c in peer_cpu],
        "cpu_ratio": round(min(peer_cpu) / min(cpu), 3), "workers": workers,
        "load_average_at_start": round(load, 2),
        "settings": {"fps": cfg.fps, "short_side": cfg.short_side, "audio_rate": cfg.audio_rate,
                     "crf": cfg.crf, "preset": cfg.preset, "scale_flags": cfg.scale_flags,
                     "clip_seconds": cfg.clip_seconds},
    }
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(cfg.json, out, indent=2)
    print(json.dumps(out, indent=2))
    return out
