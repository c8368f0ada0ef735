"""The loader benchmark's peers and profile: raw decoders on the same shard samples.

A raw decoder decodes random clips of the loader's length from in-memory mp4 bytes with
nothing else (no tar, no crop, no audio), one process or several at once; the profile
times each step of the worker side per clip on the same samples, in one process.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from dataclasses import dataclass
from itertools import islice, zip_longest

import numpy as np
import torch
import webdataset as wds

from pipeline.io.wav import read_pcm_window
from pipeline.loader.decode import get_decoder
from pipeline.loader.sample import SampleDecoder, clip_starts
from pipeline.loader.batch_ring import batch_arrays
from pipeline.loader.video_transforms import crop_clip


@dataclass
class PeerSamples:
    samples: list[dict]      # raw tar samples (members as bytes)
    tar_ms: float            # reading them from the shards, per sample

    @classmethod
    def from_shards(cls, paths: list[str], limit: int) -> "PeerSamples":
        """Up to ``limit`` samples taken from the shards in turn, so the peers decode the
        mix of videos the loader draws from (webdataset, as the loader reads them); with
        more shards than ``limit``, an evenly spread subset of them."""
        if len(paths) > limit:
            paths = paths[::math.ceil(len(paths) / limit)]
        start = time.perf_counter()
        streams = [(s for s in wds.tarfile_to_samples()([{"url": p}]) if "mp4" in s) for p in paths]
        in_turn = (s for group in zip_longest(*streams) for s in group if s is not None)
        samples = list(islice(in_turn, limit))
        return cls(samples, 1000 * (time.perf_counter() - start) / max(len(samples), 1))

    def clip(self, rng: np.random.Generator, frames: int, stride: int, positions: int = 1,
             min_shift: float = 0.0) -> tuple[bytes, list[int]]:
        """A random sample's mp4 and the frames the loader decodes for it: ``positions``
        clips of ``frames`` at least ``min_shift`` seconds apart, as the loader places
        them (GDT's two time-shifted clips), decoded in one call."""
        s = self.samples[int(rng.integers(len(self.samples)))]
        meta = json.loads(s["json"])
        span = (frames - 1) * stride + 1
        gap = int(round(min_shift * float(meta.get("fps", 0))))
        starts = clip_starts(int(meta["n_frames"]), span, positions, gap, rng)
        return s["mp4"], sorted({t + k * stride for t in starts for k in range(frames)})


def raw_rate(samples: PeerSamples, backend: str, frames: int, stride: int, seed: int,
             clips: int | None = None, seconds: float | None = None, barrier=None,
             positions: int = 1, min_shift: float = 0.0) -> float:
    """Single-process clips/s of ``backend`` on random clips: ``clips`` of them, or as
    many as fit in ``seconds`` after ``barrier``."""
    decode = get_decoder(backend)
    rng = np.random.default_rng(seed)
    for _ in range(4):  # warm-up, as the loader gets its first batch untimed
        decode(*samples.clip(rng, frames, stride, positions, min_shift))
    if barrier is not None:
        barrier.wait()
    start, done = time.perf_counter(), 0
    while done < clips if seconds is None else time.perf_counter() - start < seconds:
        decode(*samples.clip(rng, frames, stride, positions, min_shift))
        done += 1
    return done / (time.perf_counter() - start)


def _child(samples, backend, frames, stride, seed, seconds, barrier, queue, positions, min_shift) -> None:
    torch.set_num_threads(1)
    queue.put(raw_rate(samples, backend, frames, stride, seed, seconds=seconds, barrier=barrier,
                       positions=positions, min_shift=min_shift))


def parallel_rate(samples: PeerSamples, backend: str, frames: int, stride: int, procs: int,
                  seconds: float, seed: int, positions: int = 1, min_shift: float = 0.0) -> float:
    """Summed clips/s of ``procs`` raw decoders running at the same time (spawned
    processes, released together, timed over the same seconds)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    children = [ctx.Process(target=_child, args=(samples, backend, frames, stride, seed * 100 + i,
                                                 seconds, barrier, queue, positions, min_shift), daemon=True)
                for i in range(procs)]
    for c in children:
        c.start()
    rates = [queue.get(timeout=600) for _ in children]
    for c in children:
        c.join()
    return sum(rates)


def profile_clip(samples: PeerSamples, cfg, clips: int = 64) -> dict:
    """ms per clip of each step of the worker side, one process: reading the tar sample,
    the whole sample (SampleDecoder) and within it decoding the frames, crop + resize +
    flip (uint8) and the WAV window (one of each timed, times the source views), the rest
    (JSON, random draws, boxes, tokens) by difference; and the shared-memory block of a
    batch. ``cfg`` is the loader's config. With the crop in PyAV's conversion
    (``crop_in_decoder``) "decode" is decoding with the crop, resize and flip done in it,
    and "crop_resize_flip" is 0."""
    dec = SampleDecoder(cfg.clip, cfg.video, cfg.audio, True, tuple(cfg.modalities))
    seen: dict = {}
    if dec.crops_in_decoder:
        crop_views = dec.decode_frames.crop_views

        class Timed:  # the sample's decoder, its crop_views timed
            crops = True

            def crop_views(self, *args):
                t = time.perf_counter()
                hw = crop_views(*args)
                seen["decode"] = time.perf_counter() - t
                return hw
        dec.decode_frames = Timed()
    else:
        decode = dec.decode_frames

        def timed_decode(data, idx):  # the decoder the sample uses, timed (the frames kept)
            t = time.perf_counter()
            seen["frames"] = decode(data, idx)
            seen["decode"] = time.perf_counter() - t
            return seen["frames"]
        dec.decode_frames = timed_decode
    rows = {k: v[0] for k, v in batch_arrays(dec.shapes, 1).items()}
    times = {"whole_sample": 0.0, "decode": 0.0, "crop_resize_flip": 0.0, "wav_window": 0.0}
    rng = np.random.default_rng(0)
    for i in range(clips):
        raw = samples.samples[i % len(samples.samples)]
        t0 = time.perf_counter()
        dec(raw, np.random.default_rng(i), rows)
        t1 = time.perf_counter()
        if not dec.crops_in_decoder:
            crop_clip(seen["frames"][:cfg.clip.frames], None, cfg.video, rng, rows["video"][0])
        t2 = time.perf_counter()
        read_pcm_window(raw["wav"], 0.5, cfg.audio.seconds, cfg.audio.rate, out=rows["wave"][0].numpy())
        t3 = time.perf_counter()
        for k, dt in zip(times, (t1 - t0, seen["decode"], t2 - t1, t3 - t2)):
            times[k] += dt
    views = len(dec.sources)  # the sample crops and reads a window for every source view
    times["crop_resize_flip"] *= views
    times["wav_window"] *= views
    out = {k: round(1000 * v / clips, 3) for k, v in times.items()}
    out["rest_of_sample"] = round(out["whole_sample"] - out["decode"] - out["crop_resize_flip"] - out["wav_window"], 3)
    out["tar_read"] = round(samples.tar_ms, 3)
    start = time.perf_counter()
    for _ in range(8):
        batch_arrays(dec.shapes, cfg.batch_size, shared=True)
    out["shared_batch_memory"] = round(1000 * (time.perf_counter() - start) / (8 * cfg.batch_size), 3)
    out["crop_in_decoder"] = dec.crops_in_decoder
    return out
