"""``python -m pipeline bench loader``: clips/s of the full loader against raw decord decode.

The peer, measured in the same run on the same shards right before and after each loader
run, is decord decoding the same number of frames per clip from in-memory mp4 bytes with
nothing else. For w workers the limit is that peer running in w processes at once: cores
of a machine share caches and memory bandwidth (here two raw decoders together reach
~1.5x one, not 2x), so one core's rate times w is not what w cores can do. ``ratio`` per
worker count = loader clips/s / that limit (one process for 0 or 1 workers);
``ratio_to_one_core`` divides by one core's rate x w instead. ``raw_decode_clips_per_s``
is the median of the single-process peer runs.
"""
from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import time
from itertools import islice, zip_longest
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from pipeline.config import MISSING, load_config
from pipeline.io.atomic import write_json
from pipeline.loader.sample import clip_starts
from pipeline.loader.loader import ClipLoader, LoaderConfig, expand_shards
from pipeline.loader.decode import get_decoder

log = logging.getLogger(__name__)


@dataclass
class Config:
    shards: str = field(default=MISSING, metadata={"help": "shard folder, glob or brace pattern"})
    workers: str = field(default="0,1,2", metadata={"help": "comma-separated worker counts to measure", "pattern": r"\d+(,\d+)*"})
    batch_size: int = field(default=16, metadata={"help": "clips per batch", "min": 1})
    batches: int = field(default=24, metadata={"help": "batches timed per worker count (after one warm-up batch)", "min": 1})
    frames: int = field(default=8, metadata={"help": "frames per clip", "min": 1})
    stride: int = field(default=1, metadata={"help": "frame stride", "min": 1})
    size: int = field(default=112, metadata={"help": "crop size", "min": 1})
    backend: str = field(default="decord", metadata={"help": "decoder: decord | pyav"})
    raw_clips: int = field(default=200, metadata={"help": "clips decoded per raw decord measurement", "min": 1})
    raw_samples: int = field(default=256, metadata={"help": "shard samples the raw decord peer draws clips from", "min": 1})
    raw_seconds: float = field(default=2.0, metadata={"help": "seconds each process of the parallel raw decord peer decodes", "above": 0})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def _raw_samples(paths: list[str], limit: int) -> list[tuple[bytes, int]]:
    """(mp4 bytes, frame count) of up to ``limit`` samples taken from the shards in turn,
    so the peer decodes the same mix of videos the loader draws from. The shards are
    streamed (webdataset, as the loader reads them) only as far as those samples; with
    more shards than ``limit``, an evenly spread subset of them."""
    if len(paths) > limit:
        paths = paths[::math.ceil(len(paths) / limit)]
    streams = [(s for s in wds.tarfile_to_samples()([{"url": p}]) if "mp4" in s) for p in paths]
    in_turn = (s for group in zip_longest(*streams) for s in group if s is not None)
    return [(s["mp4"], int(json.loads(s["json"])["n_frames"])) for s in islice(in_turn, limit)]


def _raw_rate(cfg: Config, samples: list[tuple[bytes, int]], seed: int, backend: str = "decord",
              barrier=None, seconds: float | None = None) -> float:
    """Single-process decode rate for random clips of the same length, no augmentation:
    ``cfg.raw_clips`` clips, or as many as fit in ``seconds`` after ``barrier``."""
    decode = get_decoder(backend)
    rng = np.random.default_rng(seed)
    span = (cfg.frames - 1) * cfg.stride + 1
    for data, n in samples[:4]:  # warm-up, as the loader gets its first batch untimed
        decode(data, [k * cfg.stride for k in range(cfg.frames)])
    if barrier is not None:
        barrier.wait()
    start, done = time.perf_counter(), 0
    while done < cfg.raw_clips if seconds is None else time.perf_counter() - start < seconds:
        data, n = samples[int(rng.integers(len(samples)))]
        s = clip_starts(n, span, 1, 0, rng)[0]
        decode(data, [s + k * cfg.stride for k in range(cfg.frames)])
        done += 1
    return done / (time.perf_counter() - start)


def _raw_child(cfg: Config, samples: list[tuple[bytes, int]], seed: int, barrier, queue) -> None:
    torch.set_num_threads(1)
    queue.put(_raw_rate(cfg, samples, seed, barrier=barrier, seconds=cfg.raw_seconds))


def _raw_parallel_rate(cfg: Config, samples: list[tuple[bytes, int]], procs: int, seed: int) -> float:
    """Summed rate of ``procs`` raw decoders running at the same time (spawned processes,
    released together, timed over the same seconds)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    children = [ctx.Process(target=_raw_child, args=(cfg, samples, seed * 100 + i, barrier, queue),
                            daemon=True) for i in range(procs)]
    for c in children:
        c.start()
    rates = [queue.get(timeout=300) for _ in children]
    for c in children:
        c.join()
    return sum(rates)


def _loader_rate(cfg: Config, workers: int) -> float:
    lcfg = load_config(LoaderConfig, [], [
        f"shards={cfg.shards}", f"workers={workers}", f"batch_size={cfg.batch_size}",
        f"epoch_batches={(cfg.batches + 1) * max(workers, 1)}", f"clip.frames={cfg.frames}",
        f"clip.stride={cfg.stride}", f"video.size={cfg.size}", f"clip.backend={cfg.backend}"])
    it = iter(ClipLoader(lcfg))
    next(it)  # warm-up: worker start, first shard open
    start = time.perf_counter()
    for _ in range(cfg.batches):
        next(it)
    rate = cfg.batches * cfg.batch_size / (time.perf_counter() - start)
    del it
    return rate


def run(cfg: Config) -> dict:
    torch.set_num_threads(1)
    paths = expand_shards(cfg.shards)
    samples = _raw_samples(paths, cfg.raw_samples)
    per, raws = {}, []
    for i, w in enumerate(int(x) for x in str(cfg.workers).split(",")):
        # the peer is measured right before and after each loader run: this machine's
        # speed drifts by 10-20 % between minutes, a single early peer figure would not
        before = _raw_rate(cfg, samples, 2 * i)
        par_before = _raw_parallel_rate(cfg, samples, w, 2 * i) if w > 1 else 0.0
        rate = _loader_rate(cfg, w)
        after = _raw_rate(cfg, samples, 2 * i + 1)
        raw = (before + after) / 2
        # for 0 or 1 workers the limit is the single-process peer itself
        limit = (par_before + _raw_parallel_rate(cfg, samples, w, 2 * i + 1)) / 2 if w > 1 else raw
        raws += [before, after]
        row = {"clips_per_s": round(rate, 2), "raw_clips_per_s": round(raw, 2),
               "raw_limit_clips_per_s": round(limit, 2), "ratio": round(rate / limit, 3),
               "ratio_to_one_core": round(rate / (raw * max(w, 1)), 3)}
        if cfg.backend != "decord":  # also against the loader's own decoder alone
            own = (_raw_rate(cfg, samples, 2 * i, cfg.backend) + _raw_rate(cfg, samples, 2 * i + 1, cfg.backend)) / 2
            row.update(raw_backend_clips_per_s=round(own, 2), ratio_to_backend=round(rate / (own * max(w, 1)), 3))
        per[str(w)] = row
        log.info("workers=%d: %.1f clips/s, raw decord %.1f-%.1f per process, %.1f in %d (ratio %.2f)",
                 w, rate, before, after, limit, max(w, 1), row["ratio"])
    raw = float(np.median(raws))
    best = max(per, key=lambda k: per[k]["clips_per_s"])
    result = {"clips_per_s": per[best]["clips_per_s"], "best_workers": int(best),
              "raw_decode_clips_per_s": round(raw, 2), "ratio": per[best]["ratio"],
              "best_ratio": max(v["ratio"] for v in per.values()),
              "per_workers": per, "batch_size": cfg.batch_size, "frames": cfg.frames,
              "size": cfg.size, "backend": cfg.backend}
    if "1" in per and "2" in per:
        result["scaling_1_to_2"] = round(per["2"]["clips_per_s"] / per["1"]["clips_per_s"], 3)
        # what the machine itself gives: two raw decoders together against one
        result["raw_scaling_1_to_2"] = round(per["2"]["raw_limit_clips_per_s"] / per["1"]["raw_clips_per_s"], 3)
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(cfg.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
