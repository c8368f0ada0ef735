"""``python -m pipeline bench shard_memory --film FILM.mp4 --json OUT.json``: is the shard
stage's memory flat with the length of an input?

The stage shards, in its own process each, the first ``cuts`` seconds of ``film`` (cut
by stream copy) and the whole film, one input each, one worker. Peak RSS per program
(the Python stage vs ffmpeg) for each length, and the ratios whole / shortest: the
decoded audio goes to a file and is read by window, so the Python processes must not
grow with the input's length (decoding a long track to a float64 array would: 10 min of
48 kHz stereo is 460 MB).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.bench.process_rss import measure
from pipeline.bench.shard import cut_corpus
from pipeline.config import MISSING
from pipeline.io.atomic import write_json
from pipeline.shard.index import read_index
from pipeline.shard.probe import probe


@dataclass
class Config:
    film: str = field(default=MISSING, metadata={"help": "a long video with audio, e.g. ../shared/media/video/big_buck_bunny_full.mp4 (596 s)"})
    cuts: list[float] = field(default_factory=lambda: [60.0, 300.0], metadata={
        "help": "lengths of the shorter inputs cut from the film's start (the whole film is the longest)",
        "above": 0})
    short_side: int = field(default=128, metadata={"help": "shard short side", "min": 2})
    clip_seconds: float = field(default=4.0, metadata={"help": "clip length", "above": 0})
    scratch: str = field(default="", metadata={"help": "working folder (default: a temporary one, removed)"})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def run(cfg: Config) -> dict:
    scratch = Path(cfg.scratch or tempfile.mkdtemp(prefix="bench_shard_memory."))
    rows = {}
    try:
        corpora = []
        for seconds in cfg.cuts:
            folder = scratch / f"cut_{seconds:g}s"
            cut_corpus(cfg.film, folder, 1, seconds)
            corpora.append((f"{seconds:g}s", folder))
        whole = scratch / "whole"
        whole.mkdir(parents=True, exist_ok=True)
        if not (whole / Path(cfg.film).name).exists():
            os.symlink(os.path.abspath(cfg.film), whole / Path(cfg.film).name)
        corpora.append(("whole", whole))
        for name, corpus in corpora:
            [video] = list(corpus.iterdir())
            out = scratch / f"shards_{name}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "pipeline", "shard", f"input={corpus}", f"output={out}", "workers=1",
                   f"short_side={cfg.short_side}", f"clip_seconds={cfg.clip_seconds}", "--quiet"]
            m = measure([cmd], scratch / f"{name}.log")
            index = read_index(out)
            rows[name] = {"input_seconds": round(probe(str(video)).duration or 0.0, 2),
                          "clips": index["totals"]["clips"], "shard_bytes": index["totals"].get("bytes"), **m}
    finally:
        if not cfg.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    first, last = rows[corpora[0][0]], rows["whole"]
    s, lg = first["peak_rss_mb_by_program"], last["peak_rss_mb_by_program"]
    result = {"inputs": rows, "length_ratio": round(last["input_seconds"] / first["input_seconds"], 2),
              "peak_rss_ratio": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
              "peak_rss_ratio_by_program": {k: round(lg[k] / s[k], 3) for k in s if k in lg and s[k]},
              "config": asdict(cfg)}
    if cfg.json:
        write_json(cfg.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
