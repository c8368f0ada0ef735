"""``python -m pipeline shard input=FOLDER_OR_MANIFEST output=DIR``: videos -> webdataset shards.

Each sample is one clip: ``<key>.mp4`` (H.264, no audio, keyframe every second),
``<key>.wav`` (mono s16 PCM), ``<key>.txt`` / ``<key>.cls`` when known and ``<key>.json``
(metadata). The plan — sorted inputs, ``videos_per_shard`` per shard — depends only on
the corpus, so shards can be made by a process pool (``workers``), split across a SLURM
array (``slice=i/n``) and resumed after any crash: complete shards (stats file with the
same fingerprint) are skipped, the rest redone with identical bytes. ``index.json`` is
merged from the stats once every shard is complete.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from pipeline.config import ConfigError, save_config
from pipeline.shard.clip_encoder import ClipEncoder
from pipeline.shard.corpus import InputItem, class_names, read_corpus
from pipeline.shard.index import build_index, stray_shards, summary_table
from pipeline.shard.keys import input_prefix
from pipeline.shard.config import OUTPUT_KEYS, ShardConfig
from pipeline.shard.writer import ShardJob, fingerprint, read_stats, write_shard
from pipeline.shard.transcode import kill_with_parent
from pipeline.errors import InputError

__all__ = ["ShardConfig", "Plan", "make_plan", "parse_slice", "incomplete_slices", "merge", "run"]
log = logging.getLogger(__name__)


@dataclass
class Plan:
    items: list[InputItem]
    classes: list[str]
    jobs: list[ShardJob]            # one per shard, in shard order


def _validate(cfg: ShardConfig) -> None:
    """What the schema cannot know: the tools exist and accept the encoder settings."""
    if cfg.merge_only:
        return
    for tool in (cfg.ffmpeg, cfg.ffprobe):
        if shutil.which(tool) is None:
            raise InputError(f"'{tool}' not found on PATH (install ffmpeg, e.g. make system-deps)")
    _probe_encoder(cfg)


def _probe_encoder(cfg: ShardConfig) -> None:
    """Encode a few blank frames with ``preset`` and ``scale_flags`` through both encoders
    (ffmpeg's and PyAV's libx264), so a setting they refuse stops the run here, once,
    instead of failing every input."""
    def ffmpeg_refuses(flags: str, preset: str) -> str:
        cmd = [cfg.ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i",
               "color=c=gray:s=32x32:r=25:d=0.12", "-vf", f"scale=16:16:flags={flags}",
               "-c:v", "libx264", "-preset", preset, "-f", "null", "-"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        lines = res.stderr.strip().splitlines()
        return "" if res.returncode == 0 else (lines[0] if lines else f"ffmpeg exit {res.returncode}")

    if ffmpeg_refuses(cfg.scale_flags, cfg.preset):
        why = ffmpeg_refuses("area", cfg.preset)
        key = "preset" if why else "scale_flags"
        why = why or ffmpeg_refuses(cfg.scale_flags, cfg.preset)
        raise ConfigError(f"bad value for key '{key}': {getattr(cfg, key)!r}; ffmpeg refuses it ({why})")
    try:
        enc = ClipEncoder(16, 16, 25, cfg.crf, cfg.preset, threads=1)
        enc.add(np.zeros((24, 16), np.uint8))
        enc.finish()
    except av.error.FFmpegError as err:
        raise ConfigError(f"bad value for key 'preset': {cfg.preset!r}; PyAV's libx264 refuses it "
                          f"({err})") from None


def parse_slice(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n); empty -> (0, 1)."""
    if not text:
        return 0, 1
    head, _, tail = str(text).partition("/")
    if not (head.isdigit() and tail.isdigit()) or not 0 <= int(head) < int(tail):
        raise ConfigError(f"slice must be i/n with 0 <= i < n, got {text!r}")
    return int(head), int(tail)


def make_plan(cfg: ShardConfig) -> Plan:
    """The deterministic input -> shard assignment every slice and re-run agrees on."""
    items = read_corpus(cfg.input, cfg.extensions, cfg.labels_from_folders)
    prefixes: dict[str, str] = {}
    for it in items:
        other = prefixes.setdefault(input_prefix(it.path, it.identity), it.identity)
        if other != it.identity:  # 40-bit hash collision: astronomically rare, never silent
            raise InputError(f"key collision between inputs {other!r} and {it.identity!r}")
    classes = class_names(items)
    n = cfg.videos_per_shard
    jobs = []
    for i in range(0, len(items), n):
        chunk = items[i:i + n]
        jobs.append(ShardJob(i // n, chunk, fingerprint(cfg, classes, chunk)))
    return Plan(items, classes, jobs)


def incomplete_slices(cfg: ShardConfig, n_slices: int) -> list[int]:
    """Slices (of ``n_slices``) that still own an incomplete shard: what a launcher resubmits."""
    plan = make_plan(cfg)
    return sorted({j.index % n_slices for j in plan.jobs
                   if read_stats(cfg.output, cfg.name, j.index, j.fingerprint) is None})


def merge(cfg: ShardConfig, plan: Plan | None = None) -> dict:
    """Build ``index.json`` from the stats files; InputError if a shard is incomplete."""
    plan = plan or make_plan(cfg)
    stats = [read_stats(cfg.output, cfg.name, j.index, j.fingerprint) for j in plan.jobs]
    missing = [j.index for j, s in zip(plan.jobs, stats) if s is None]
    if missing:
        raise InputError(f"{cfg.output}: {len(missing)} of {len(plan.jobs)} shard(s) incomplete "
                         f"(e.g. {cfg.name}-{missing[0]:06d}); run the shard stage to finish them")
    stray = stray_shards(cfg.output, cfg.name, len(plan.jobs))
    if stray:
        log.warning("%s: %d tar(s) not in this plan (an older run?), e.g. %s; remove them "
                    "before loading the folder", cfg.output, len(stray), stray[0])
    settings = {k: getattr(cfg, k) for k in OUTPUT_KEYS + ("videos_per_shard",)}
    return build_index(cfg.output, cfg.name, plan.classes, stats, settings)


_QUEUE = None


def _init_worker(q) -> None:
    global _QUEUE
    _QUEUE = q
    kill_with_parent()


def _pool_shard(cfg: ShardConfig, job: ShardJob, classes: list[str]) -> dict:
    return write_shard(cfg, job, classes, progress=lambda e: _QUEUE.put(e))


def _execute(cfg: ShardConfig, jobs: list[ShardJob], classes: list[str]) -> list[dict]:
    """Write ``jobs`` (a process pool when workers > 1); returns the input entries.

    The entries come from the shards' results; the queue only feeds the progress bar."""
    workers = min(cfg.workers or len(os.sched_getaffinity(0)), len(jobs))
    bar = tqdm(total=sum(len(j.inputs) for j in jobs), desc="shard", unit="video")
    clips = 0

    def seen(entry: dict) -> None:
        nonlocal clips
        clips += entry["clips"]
        bar.update(1)
        bar.set_postfix(clips=clips, refresh=False)

    if workers <= 1:
        stats = [write_shard(cfg, job, classes, progress=seen) for job in jobs]
    else:
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(q,)) as pool:
            futures = [pool.submit(_pool_shard, cfg, job, classes) for job in jobs]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(q, seen)
        _drain(q, seen)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            bar.close()
            raise errors[0]
        stats = [f.result() for f in futures]
    bar.close()
    return [e for s in stats for e in s["inputs"]]


def _drain(q, seen) -> None:
    while True:
        try:
            seen(q.get_nowait())
        except queue.Empty:
            return


def run(cfg: ShardConfig) -> dict:
    _validate(cfg)
    plan = make_plan(cfg)  # a bad input is reported before anything is written
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if cfg.merge_only:
        index = merge(cfg, plan)
        log.info("shard: index of %d shards, %d clips -> %s", len(plan.jobs),
                 index["totals"]["clips"], out / "index.json")
        return {"index": str(out / "index.json"), "complete": True, **index["totals"]}
    part, parts = parse_slice(cfg.slice)
    mine = [j for j in plan.jobs if j.index % parts == part]
    todo = [j for j in mine if read_stats(out, cfg.name, j.index, j.fingerprint) is None]
    log.info("shard: %d inputs, %d classes -> %d shards; slice %d/%d owns %d, %d to write",
             len(plan.items), len(plan.classes), len(plan.jobs), part, parts, len(mine), len(todo))
    start = time.perf_counter()
    entries = _execute(cfg, todo, plan.classes) if todo else []
    wall = time.perf_counter() - start
    table = summary_table(entries, wall, len(todo), len(mine) - len(todo))
    print(table, flush=True)
    complete = all(read_stats(out, cfg.name, j.index, j.fingerprint) for j in plan.jobs)
    index = merge(cfg, plan) if complete else None
    ok_seconds = sum(e["seconds"] for e in entries if e["status"] == "ok")
    result = {
        "shards": len(plan.jobs), "shards_written": len(todo), "shards_skipped": len(mine) - len(todo),
        "inputs": len(entries), "ok": sum(e["status"] == "ok" for e in entries),
        "failed": sum(e["status"] == "failed" for e in entries),
        "skipped": sum(e["status"] == "skipped" for e in entries),
        "clips": sum(e["clips"] for e in entries), "input_seconds": round(ok_seconds, 3),
        "wall_seconds": round(wall, 3),
        "input_seconds_per_s": round(ok_seconds / wall, 3) if wall > 0 else 0.0,
        "videos_per_s": round(len(entries) / wall, 3) if wall > 0 else 0.0,
        "complete": complete, "index": str(out / "index.json") if index else None,
    }
    if index:
        log.info("shard: corpus complete: %d videos, %d clips, %.3f h -> %s",
                 index["totals"]["videos"], index["totals"]["clips"], index["totals"]["hours"],
                 out / "index.json")
    return result
