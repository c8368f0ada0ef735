"""``loader.clip.backend=auto``: time the installed decoders on the run's own shards, keep
the fastest.

Why at start-up and not a fixed default: which decoder is fastest is not a constant.
On one 2-core machine and the same shards torchcodec was 1.46x PyAV in one run and equal
in the next, and another machine had PyAV ahead (issue 24); a user's nodes differ again.
The three backends give identical frames (``tests/loader/test_decode.py``), so with the
default ``crop_in_decoder=false`` the choice changes speed only; with it on, PyAV crops and
resizes in its conversion (``decode_crop.py``), ~2 levels of 255 per pixel from the torch
resize the others get. The choice is recorded, so a resumed run keeps the same pixels. It
is timed on the backends' full-frame decoding, which leaves PyAV's in-conversion crop out
of the comparison.

How: a few samples of the run's first shards are read once; every installed backend
decodes the same clips (the run's frames, stride and positions) in interleaved rounds,
so a drift of the machine's speed hits all alike; the median round decides. A backend
within ``TIE`` of the fastest that comes earlier in ``PREFERENCE`` wins, so two backends
that run neck and neck give the same answer run after run. It takes a second or two and
is logged once with the figures.

Once per run: ``ClipLoader`` resolves ``auto`` in the training process before any worker
starts (each worker gets the chosen decoder pickled, so all agree); the training engine
resolves it before that on rank 0 only, broadcasts it to the other ranks, writes it into
the run's saved ``config.yaml``, and on a resume keeps what that file recorded.
"""
from __future__ import annotations

import importlib.util
import logging
import statistics
import time
from dataclasses import replace
from itertools import islice

import numpy as np

log = logging.getLogger(__name__)

AUTO = "auto"
# on a tie the earlier wins: PyAV was the fastest on most machines measured (README)
PREFERENCE = ("pyav", "torchcodec", "decord")
TIE = 0.05           # within 5 % of the fastest counts as a tie
SAMPLES = 6          # shard samples the clips are drawn from
ROUNDS = 5           # interleaved rounds; the median round decides
BUDGET_S = 2.0       # stop adding rounds (beyond 3) once this much time is spent
_MODULES = {"pyav": "av", "torchcodec": "torchcodec", "decord": "decord"}
_cache: dict[tuple, tuple[str, dict]] = {}


def installed_backends() -> list[str]:
    """The backends whose package imports here, in ``PREFERENCE`` order."""
    return [b for b in PREFERENCE if importlib.util.find_spec(_MODULES[b]) is not None]


def _samples(shards: list[str], n: int) -> list[dict]:
    import webdataset as wds
    out = []
    for url in shards:
        out += list(islice((s for s in wds.tarfile_to_samples(handler=wds.ignore_and_continue)([{"url": url}])
                            if "mp4" in s and "json" in s), n - len(out)))
        if len(out) >= n:
            break
    return out


def _clips(samples: list[dict], frames: int, stride: int, positions: int,
           min_shift: float = 0.0) -> list[tuple[bytes, list[int]]]:
    """The frame indices a training sample of the run decodes: ``positions`` clips of
    ``frames``, ``min_shift`` seconds apart where the video allows (fixed, so every
    backend decodes the same)."""
    import json

    from pipeline.loader.sample import clip_starts
    span = (frames - 1) * stride + 1
    out = []
    for i, s in enumerate(samples):
        try:
            meta = json.loads(s["json"])
            n, gap = int(meta.get("n_frames", span)), int(round(min_shift * float(meta.get("fps", 0))))
        except (ValueError, TypeError, AttributeError):
            continue  # a corrupt sample: the loader skips it too
        starts = clip_starts(n, span, positions, gap, np.random.default_rng(i))
        out.append((s["mp4"], sorted({st + k * stride for st in starts for k in range(frames)})))
    return out


def usable(clips: list[tuple[bytes, list[int]]], backend: str) -> list[tuple[bytes, list[int]]]:
    """The clips ``backend`` decodes (a corrupt sample is the loader's to skip, not the
    timing's to fail on); decoding them once is also its warm-up."""
    from pipeline.loader.decode import get_decoder
    decode, ok = get_decoder(backend), []
    for clip in clips:
        try:
            decode(*clip)
            ok.append(clip)
        except Exception:  # noqa: BLE001 - any decoder error means: not a clip to time on
            pass
    return ok


def time_backends(clips: list[tuple[bytes, list[int]]], backends: list[str],
                  rounds: int = ROUNDS, budget_s: float = BUDGET_S) -> dict[str, float]:
    """Median ms per clip of each backend over interleaved rounds (one warm-up decode
    each, untimed). A backend that fails on these clips is left out."""
    from pipeline.loader.decode import get_decoder
    decoders, per = {}, {}
    for b in backends:
        try:
            decoders[b] = get_decoder(b)
            decoders[b](*clips[0])  # warm-up: library load, first converter
            per[b] = []
        except Exception as exn:  # noqa: BLE001 - a broken install must not stop training
            log.warning("loader.clip.backend=auto: %s left out (%s)", b, exn)
    start = time.perf_counter()
    for r in range(rounds):
        names = list(per)
        for b in names[r % len(names):] + names[:r % len(names)] if names else []:
            t = time.perf_counter()
            try:
                for data, idx in clips:
                    decoders[b](data, idx)
            except Exception as exn:  # noqa: BLE001 - as above
                log.warning("loader.clip.backend=auto: %s left out (%s)", b, exn)
                del per[b]
                continue
            per[b].append(1000 * (time.perf_counter() - t) / len(clips))
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    return {b: round(statistics.median(v), 3) for b, v in per.items() if v}


def pick(ms: dict[str, float]) -> str:
    """The fastest, or an earlier one in ``PREFERENCE`` within ``TIE`` of it."""
    best = min(ms.values())
    return next(b for b in PREFERENCE if b in ms and ms[b] <= best * (1 + TIE))


def choose_backend(shards: list[str], frames: int, stride: int, positions: int,
                   min_shift: float = 0.0) -> tuple[str, dict]:
    """(backend, ms per clip of each timed backend); once per process and setting."""
    key = (tuple(shards[:4]), frames, stride, positions, min_shift)
    if key in _cache:
        return _cache[key]
    from pipeline.errors import InputError
    backends = installed_backends()
    if not backends:
        raise InputError("loader.clip.backend=auto: none of av, torchcodec, decord is installed")
    clips = usable(_clips(_samples(shards, SAMPLES), frames, stride, positions, min_shift), backends[0])
    if not clips:
        log.warning("loader.clip.backend=auto: no readable video sample in %s...; using %s", shards[:2], backends[0])
        _cache[key] = (backends[0], {})
        return _cache[key]
    ms = time_backends(clips, backends)
    if not ms:
        raise InputError(f"loader.clip.backend=auto: no installed decoder ({backends}) decodes the "
                         f"videos of {shards[0]}")
    choice = pick(ms)
    log.info("loader.clip.backend=auto chose %s: ms per clip of %d frames on %d samples of the "
             "run's shards (median of rounds) %s", choice, frames, len(clips),
             ", ".join(f"{b} {v:.2f}" for b, v in sorted(ms.items(), key=lambda kv: kv[1])))
    _cache[key] = (choice, ms)
    return _cache[key]


def resolve_clip(clip, shards: list[str], modalities) -> object:
    """``clip`` (a ``ClipConfig``) with ``backend=auto`` replaced by the choice; others as is.
    CUDA decoding has one backend (torchcodec); without video there is nothing to time."""
    if clip.backend != AUTO:
        return clip
    if clip.decode_device == "cuda":
        return replace(clip, backend="torchcodec")
    if "video" not in modalities:
        return replace(clip, backend=PREFERENCE[0])
    return replace(clip, backend=choose_backend(shards, clip.frames, clip.stride, clip.positions,
                                                clip.min_shift if clip.positions > 1 else 0.0)[0])


def recorded_backend(saved_config) -> str | None:
    """The concrete backend a run's saved ``config.yaml`` recorded (a resume keeps it)."""
    from pathlib import Path

    from omegaconf import OmegaConf
    path = Path(saved_config)
    if not path.is_file():
        return None
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
        backend = (saved.get("loader") or {}).get("clip", {}).get("backend")
    except Exception:  # noqa: BLE001 - broken YAML (PyYAML's errors) or not a run config: time anew
        return None
    return backend if backend in PREFERENCE else None


def resolve_for_run(loader_cfg, saved_config, is_main: bool) -> object:
    """``loader_cfg`` (a ``LoaderConfig``) with ``auto`` resolved once for a whole run:
    kept from the run's saved config when resuming, else timed on rank 0 and sent to
    every rank (``torch.distributed`` when initialised), so all ranks and workers decode
    with one backend and the saved config says which."""
    import torch.distributed as dist
    if loader_cfg.clip.backend != AUTO:
        return loader_cfg
    choice = recorded_backend(saved_config) if is_main else None
    if is_main and choice is not None:
        log.info("loader.clip.backend=auto: keeping %s, recorded in %s (resume)", choice, saved_config)
    if is_main and choice is None:
        from pipeline.loader.loader import expand_shards
        specs = [s.shards for s in loader_cfg.sources] or [loader_cfg.shards]
        shards = [p for s in specs if s for p in expand_shards(s)]
        choice = resolve_clip(loader_cfg.clip, shards, loader_cfg.modalities).backend
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [choice]
        dist.broadcast_object_list(box, src=0)
        choice = box[0]
    return replace(loader_cfg, clip=replace(loader_cfg.clip, backend=choice))
