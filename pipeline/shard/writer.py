"""Write one shard: its inputs' samples into ``NAME-i.tar``, then ``NAME-i.stats.json``.

The stats file is the shard's completion marker. It is written only after the tar is
closed, fsynced and renamed into place, and it records the fingerprint of the plan
(inputs, labels, output settings) that made the shard. A re-run treats a shard as done
only when its stats exist with the same fingerprint; anything else is redone from
scratch, which gives the same bytes because every step is deterministic. A shard
during which the machine runs out of disk, quota, file handles or memory is not
committed at all (``pipeline.shard.resources``), so no good input is marked failed for it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pipeline.errors import InputError
from pipeline.io.atomic import write_text
from pipeline.io.x264 import encoder_versions
from pipeline.shard.corpus import InputItem
from pipeline.shard.config import OUTPUT_KEYS, ShardConfig
from pipeline.shard.input import process_input
from pipeline.shard.resources import ADVICE, OutOfResources, describe, resource_errno
from pipeline.io.tar import DeterministicTar


@dataclass
class ShardJob:
    index: int
    inputs: list[InputItem]
    fingerprint: str
    output: str                     # the shard set's folder (output/ or output/<subset>/)
    tmp_dir: str = ""               # scratch folder; empty = inside output


def fingerprint(cfg: ShardConfig, classes: list[str], inputs: list[InputItem]) -> str:
    """Hash of everything that decides a shard's bytes (the input files are assumed
    unchanged), the encoders' versions included: a new ffmpeg, PyAV or x264 redoes the
    shards rather than mixing its bytes with the old ones'."""
    rows = [{k: v for k, v in asdict(it).items() if k != "abspath"} for it in inputs]
    blob = {"config": {k: getattr(cfg, k) for k in OUTPUT_KEYS}, "classes": classes, "inputs": rows,
            "encoders": encoders(cfg.ffmpeg)}
    return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def encoders(ffmpeg: str) -> dict[str, str]:
    """``encoder_versions``, or one error naming the ffmpeg that cannot run."""
    try:
        return encoder_versions(ffmpeg)
    except (OSError, subprocess.SubprocessError) as err:
        if resource_errno(err):  # no process or handle left: the machine's, said as such
            raise
        raise InputError(f"ffmpeg={ffmpeg}: cannot run it to read the encoder versions ({err})") from None


def shard_base(name: str, index: int) -> str:
    return f"{name}-{index:06d}"


def stats_path(output: str | Path, name: str, index: int) -> Path:
    return Path(output) / f"{shard_base(name, index)}.stats.json"


def read_stats(output: str | Path, name: str, index: int, fp: str | None = None) -> dict | None:
    """The shard's stats if it is complete (and made by plan ``fp`` when given), else None."""
    path = stats_path(output, name, index)
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if fp is not None and stats.get("fingerprint") != fp:
        return None
    if not (Path(output) / stats.get("shard", "")).is_file():
        return None
    return stats


def _clean(output: Path, tmp_root: Path, base: str) -> None:
    """Remove what an interrupted attempt at this shard left: temporaries, stale stats."""
    for root in {output, tmp_root}:
        for p in root.glob(f".{base}.*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    (output / f"{base}.stats.json").unlink(missing_ok=True)


def write_shard(cfg: ShardConfig, job: ShardJob, classes: list[str],
                progress: Callable[[dict], None] | None = None) -> dict:
    """Write and commit one shard; its stats. The machine running out (disk, quota,
    file handles, memory) raises :class:`OutOfResources` and commits nothing."""
    where = Path(job.output) / f"{shard_base(cfg.name, job.index)}.tar"
    try:
        return _write_shard(cfg, job, classes, progress)
    except OutOfResources as exc:
        raise OutOfResources(f"{where}: {exc}; {ADVICE}") from None
    except Exception as exc:
        if resource_errno(exc) is None:
            raise
        raise OutOfResources(f"{where}: {describe(exc)}; {ADVICE}") from None


def _write_shard(cfg: ShardConfig, job: ShardJob, classes: list[str],
                 progress: Callable[[dict], None] | None = None) -> dict:
    output = Path(job.output)
    tmp_root = Path(job.tmp_dir) if job.tmp_dir else output
    tmp_root.mkdir(parents=True, exist_ok=True)
    base = shard_base(cfg.name, job.index)
    _clean(output, tmp_root, base)
    class_index = {name: i for i, name in enumerate(classes)}
    entries: list[dict] = []
    samples = 0

    tar = DeterministicTar(output / f"{base}.tar")

    def emit(key: str, members: list[tuple[str, bytes]]) -> None:
        nonlocal samples
        for ext, data in members:
            tar.add(f"{key}.{ext}", data)
        samples += 1

    try:
        with tempfile.TemporaryDirectory(dir=tmp_root, prefix=f".{base}.") as tmp:
            for item in job.inputs:
                entry = process_input(item, cfg, class_index, tmp, emit)
                entry["shard"] = f"{base}.tar"
                entries.append(entry)
                if progress:
                    progress(entry)
        size = tar.close()
    except BaseException:
        tar.abort()
        raise
    statuses = Counter(e["status"] if e["status"] == "ok" else f"{e['status']}:{e['reason']}"
                       for e in entries)
    stats = {"shard": f"{base}.tar", "index": job.index, "fingerprint": job.fingerprint,
             "encoders": encoders(cfg.ffmpeg), "samples": samples, "bytes": size,
             "seconds": round(sum(e.get("clip_seconds", 0.0) for e in entries), 3),
             "input_seconds": round(sum(e["seconds"] for e in entries), 3),
             "statuses": dict(sorted(statuses.items())), "inputs": entries}
    write_text(stats_path(output, cfg.name, job.index), json.dumps(stats, indent=1))
    return stats
