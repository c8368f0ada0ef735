"""``python -m pipeline shard input=FOLDER_OR_MANIFEST output=DIR [dataset=ucf101 split=1]``:
videos -> webdataset shards.

Each sample is one clip: ``<key>.mp4`` (H.264, no audio, keyframe every second),
``<key>.wav`` (mono s16 PCM), ``<key>.txt`` / ``<key>.cls`` when known and ``<key>.json``
(metadata). The plan — sorted inputs, ``videos_per_shard`` per shard — depends only on
the corpus, so shards can be made by a process pool (``workers``), split across a SLURM
array (``slice=i/n``) and resumed after any crash: complete shards (stats file with the
same fingerprint) are skipped, the rest redone with identical bytes. ``index.json`` is
merged from the stats once every shard is complete.

A split corpus (a dataset layout's train/test or folds, a folder's ``splits.csv``, or the
default held-out part of a folder: ``pipeline.shard.layouts``) becomes one such shard set
per subset, ``output/<subset>/``, with the same class list, plus ``output/splits.json``
listing which input went where and which the split leaves out.
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
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from pipeline.config import ConfigError, save_config
from pipeline.shard.clip_encoder import ClipEncoder
from pipeline.shard.corpus import InputItem
from pipeline.shard.index import build_index, index_path, stray_shards, summary_table
from pipeline.shard.keys import input_prefix
from pipeline.shard.config import OUTPUT_KEYS, ShardConfig, with_defaults
from pipeline.shard.layouts import SINGLE, Layout, read_layout
from pipeline.shard.resources import ADVICE, OutOfResources, describe, resource_errno

from pipeline.shard.splits import splits_path, write_splits
from pipeline.shard.writer import ShardJob, fingerprint, read_stats, write_shard
from pipeline.shard.transcode import kill_with_parent
from pipeline.errors import InputError

__all__ = ["ShardConfig", "Plan", "ShardSet", "make_plan", "parse_slice", "incomplete_slices", "merge",
           "split_listing", "run"]
log = logging.getLogger(__name__)

@dataclass
class ShardSet:
    subset: str                     # "" (SINGLE): the corpus is not split
    output: str                     # its folder: output/ or output/<subset>/
    jobs: list[ShardJob]

@dataclass
class Plan:
    cfg: ShardConfig                # with the layout's values for the keys left unset
    layout: Layout
    classes: list[str]
    items: list[InputItem]          # every input to shard, all subsets
    sets: list[ShardSet]
    jobs: list[ShardJob]            # every shard of every set, in order: slices share these

    @property
    def indexes(self) -> list[Path]:
        return [index_path(s.output) for s in self.sets]

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
    layout = read_layout(cfg)
    cfg = with_defaults(cfg, layout.defaults)
    items = [it for subset in layout.subsets.values() for it in subset]
    prefixes: dict[str, str] = {}
    for it in items:
        other = prefixes.setdefault(input_prefix(it.path, it.identity), it.identity)
        if other != it.identity:  # 40-bit hash collision: astronomically rare, never silent
            raise InputError(f"key collision between inputs {other!r} and {it.identity!r}")
    n, sets, jobs = cfg.videos_per_shard, [], []
    for subset, members in layout.subsets.items():
        if not members:
            raise InputError(f"input {cfg.input}: the {layout.dataset} layout puts no input in "
                             f"{subset or 'the corpus'}")
        output = str(Path(cfg.output) / subset) if subset else cfg.output
        tmp = str(Path(cfg.tmp_dir) / subset) if cfg.tmp_dir and subset else cfg.tmp_dir
        mine = [ShardJob(i // n, members[i:i + n], fingerprint(cfg, layout.classes, members[i:i + n]),
                         output, tmp) for i in range(0, len(members), n)]
        sets.append(ShardSet(subset, output, mine))
        jobs += mine
    return Plan(cfg, layout, layout.classes, items, sets, jobs)

def _done(cfg: ShardConfig, job: ShardJob) -> dict | None:
    return read_stats(job.output, cfg.name, job.index, job.fingerprint)

def incomplete_slices(cfg: ShardConfig, n_slices: int) -> list[int]:
    """Slices (of ``n_slices``) that still own an incomplete shard: what a launcher resubmits."""
    plan = make_plan(cfg)
    return sorted({k % n_slices for k, j in enumerate(plan.jobs) if _done(plan.cfg, j) is None})

def merge(cfg: ShardConfig, plan: Plan | None = None) -> dict[str, dict]:
    """Build each shard set's ``index.json`` from its stats files: {subset: index}.
    InputError if a shard is incomplete."""
    plan = plan or make_plan(cfg)
    cfg = plan.cfg
    stats = [_done(cfg, j) for j in plan.jobs]
    missing = [j for j, st in zip(plan.jobs, stats) if st is None]
    if missing:
        raise InputError(f"{missing[0].output}: {len(missing)} of {len(plan.jobs)} shard(s) incomplete "
                         f"(e.g. {cfg.name}-{missing[0].index:06d}); run the shard stage to finish them")
    by_job = {id(j): st for j, st in zip(plan.jobs, stats)}
    settings = {k: getattr(cfg, k) for k in OUTPUT_KEYS + ("videos_per_shard",)}
    indexes = {}
    for s in plan.sets:
        stray = stray_shards(s.output, cfg.name, len(s.jobs))
        if stray:
            log.warning("%s: %d tar(s) not in this plan (an older run?), e.g. %s; remove them "
                        "before loading the folder", s.output, len(stray), stray[0])
        indexes[s.subset] = build_index(s.output, cfg.name, plan.classes,
                                        [by_job[id(j)] for j in s.jobs], settings)
    return indexes

def split_listing(plan: Plan) -> dict:
    """``splits.json`` of a split corpus: which input went to which subset, and which
    inputs the split leaves out (with their status), so every input is accounted for."""
    lay = plan.layout
    return {"dataset": lay.dataset, "input": plan.cfg.input, **lay.info, "classes": plan.classes,
            "subsets": {s: [it.path for it in items] for s, items in lay.subsets.items()},
            "unused": lay.unused}

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

def _prepare(plan: Plan) -> None:
    """Folders, resolved configs (each shard set has its own, as any shard folder does) and
    the split listing; the same bytes from every slice, so concurrent slices agree."""
    cfg, out = plan.cfg, Path(plan.cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    if plan.layout.split:
        for s in plan.sets:
            Path(s.output).mkdir(parents=True, exist_ok=True)
            save_config(replace(cfg, output=s.output, tmp_dir=s.jobs[0].tmp_dir),
                        Path(s.output) / "config.yaml")
        write_splits(out, split_listing(plan))

def run(cfg: ShardConfig) -> dict:
    """Shard the corpus; a full disk (or another machine limit) is one line, never a
    traceback and never a status of an input (``pipeline.shard.resources``)."""
    try:
        return _run(cfg)
    except OutOfResources:
        raise
    except Exception as exc:
        if resource_errno(exc) is None:
            raise
        raise OutOfResources(f"output {cfg.output}: {describe(exc)}; {ADVICE}") from None

def _run(cfg: ShardConfig) -> dict:
    plan = make_plan(cfg)  # a bad input or split file is reported before anything is written
    cfg = plan.cfg
    _validate(cfg)
    out = Path(cfg.output)
    _prepare(plan)
    split = plan.layout.split
    if cfg.merge_only:
        indexes = merge(cfg, plan)
        log.info("shard: index of %d shards, %d clips -> %s", len(plan.jobs),
                 sum(i["totals"]["clips"] for i in indexes.values()), out)
        return {"index": None if split else str(index_path(out)), "complete": True,
                **({"subsets": {s.subset: str(index_path(s.output)) for s in plan.sets}}
                   if split else indexes[SINGLE]["totals"])}
    part, parts = parse_slice(cfg.slice)
    mine = [j for k, j in enumerate(plan.jobs) if k % parts == part]
    todo = [j for j in mine if _done(cfg, j) is None]
    log.info("shard: %d inputs, %d classes -> %d shards in %d set(s); slice %d/%d owns %d, %d to write",
             len(plan.items), len(plan.classes), len(plan.jobs), len(plan.sets), part, parts,
             len(mine), len(todo))
    start = time.perf_counter()
    entries = _execute(cfg, todo, plan.classes) if todo else []
    entries += plan.layout.unused if part == 0 else []  # counted by one slice only
    wall = time.perf_counter() - start
    table = summary_table(entries, wall, len(todo), len(mine) - len(todo))
    print(table, flush=True)
    complete = all(_done(cfg, j) for j in plan.jobs)
    indexes = merge(cfg, plan) if complete else None
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
        "complete": complete, "index": str(index_path(out)) if indexes and not split else None,
    }
    if split:
        result["subsets"] = {s.subset: str(index_path(s.output)) for s in plan.sets}
        result["splits"] = str(splits_path(out))
    for subset, index in (indexes or {}).items():
        log.info("shard: %s complete: %d videos, %d clips, %.3f h -> %s", subset or "corpus",
                 index["totals"]["videos"], index["totals"]["clips"], index["totals"]["hours"],
                 index_path(Path(cfg.output) / subset))
    return result
