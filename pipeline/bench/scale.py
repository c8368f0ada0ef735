"""``python -m pipeline bench scale --json OUT.json``: does each stage's cost grow linearly
and its memory stay flat with the corpus size?

The whole pipeline (synth -> shard -> train -> cluster -> detect -> export -> eval ->
report) runs twice, on ``n`` and on ``factor x n`` short synthetic videos (plus a
held-out set of ``test_fraction`` of that), every stage in its own process, exactly as
the CLI runs it. Per stage and size: wall and CPU seconds, the items it handled (videos,
clips or frames, see ``ITEMS``), seconds per item and the peak RSS (``wait4`` rusage of
the stage process: its largest process, itself or a worker). Then the ratios large /
small. Training steps are fixed, so train, cluster and detect also pay a constant part.

Goals: per-item time ratio <= 1.25 and peak-RSS ratio <= 1.3 for ``FLAT`` stages; for
``ARRAY`` stages the RSS may grow by the per-sample arrays they document: the JSON gives
the measured growth per added sample beside the documented bytes per sample.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.bench.process_rss import measure
from pipeline.config import CONFIGS
from pipeline.io.atomic import write_json

STAGES = ("synth", "shard", "train", "cluster", "detect", "export", "eval", "report")
FLAT = ("shard", "train", "detect", "report")
ARRAY = ("cluster", "eval")
TIME_RATIO, RSS_RATIO = 1.25, 1.3
RSS_NOISE_MB = 8  # peak RSS of the same run differs by a few MB (allocator, imports)
ITEMS = {"synth": "videos", "shard": "videos", "train": "clips trained (steps x batch)",
         "cluster": "clips labelled", "detect": "frames (training + held-out)", "export": "runs",
         "eval": "clips (training + held-out)", "report": "held-out clips"}


@dataclass
class Config:
    n: int = field(default=128, metadata={"help": "training videos of the small corpus", "min": 1})
    factor: int = field(default=8, metadata={"help": "the large corpus has factor x n videos", "min": 2})
    test_fraction: float = field(default=0.25, metadata={"help": "held-out videos per training video", "above": 0})
    seconds: float = field(default=2.0, metadata={"help": "length of each synthetic video (one clip each)", "min": 1})
    size: int = field(default=64, metadata={"help": "synthetic frame size = shard short side", "min": 32})
    classes: int = field(default=8, metadata={"help": "synthetic classes (= clusters)", "min": 2, "max": 64})
    videos_per_shard: int = field(default=16, metadata={"help": "shard size: more shards, not bigger ones, at 8N", "min": 1})
    workers: int = field(default=2, metadata={"help": "shard/synth processes and loader workers", "min": 1})
    steps: int = field(default=40, metadata={"help": "fixed optimizer steps of train, cluster, detect (av and detector)", "min": 1})
    batch_size: int = field(default=16, metadata={"help": "clips per batch", "min": 1})
    stages: list[str] = field(default_factory=lambda: list(STAGES), metadata={
        "help": "stages to run, in order, each needing its predecessors' outputs", "choices": STAGES})
    scratch: str = field(default="", metadata={"help": "working folder (default: a temporary one, removed)"})
    json: str = field(default="", metadata={"help": "write the results here as JSON"})


def documented_bytes(cfg: Config) -> dict[str, dict]:
    """Per-sample arrays the ARRAY stages keep, as their code documents them."""
    heads, k, dim = 4, cfg.classes, 64  # selavi_tiny heads; gdt_tiny feature and embedding width
    return {
        "cluster": {"bytes": 8 * heads + 4 + 36 + 6 * k + 250, "what": (
            "labels int64 x heads + confidence float32 + Sinkhorn row state (36) + one head's "
            "float16 log-probs memory-mapped and its float32 kernel (6 x K; the kernel only while "
            "it fits sinkhorn.cache_gb) + ~250 for the key string, its index entry and the true label")},
        "eval": {"bytes": 2 * 2 * 2 * dim * 4, "what": (
            "features and embeddings, float32: 2 models (trained, random) x 2 modalities x "
            f"({dim} + {dim})")}}


def _stage_commands(cfg: Config, root: Path, n: int) -> dict[str, tuple[list[list[str]], int]]:
    """Per stage: the CLI commands (one process each) and the number of items."""
    n_test = max(1, round(n * cfg.test_fraction))
    c, s = root / "corpus", root / "shards"
    py = [sys.executable, "-m", "pipeline"]
    synth = [py + ["synth", f"out={c / split}", f"n_videos={m}", f"n_classes={cfg.classes}", f"seed={seed}",
                   f"seconds={cfg.seconds}", f"size={cfg.size}", f"workers={cfg.workers}"]
             for split, m, seed in (("train", n, 0), ("test", n_test, 1))]
    shard = [py + ["shard", f"input={c / split / 'manifest.jsonl'}", f"output={s / split}",
                   f"short_side={cfg.size}", f"clip_seconds={cfg.seconds}", f"workers={cfg.workers}",
                   f"videos_per_shard={cfg.videos_per_shard}"] for split in ("train", "test")]
    loader = [f"loader.batch_size={cfg.batch_size}", f"loader.workers={cfg.workers}"]
    steps = [f"steps={cfg.steps}", f"ckpt.every={cfg.steps}", "tensorboard=false"]
    stages = {
        "synth": (synth, n + n_test),
        "shard": (shard, n + n_test),
        "train": ([py + ["train", str(CONFIGS / "gdt_tiny.yaml"), f"out={root / 'gdt'}",
                         f"loader.shards={s / 'train'}", *loader, *steps]], cfg.steps * cfg.batch_size),
        "cluster": ([py + ["cluster", str(CONFIGS / "selavi_tiny.yaml"), f"out={root / 'selavi'}",
                           f"loader.shards={s / 'train'}", f"selavi.clusters={cfg.classes}", "selavi.relabels=2",
                           *loader, *steps]], n),
        "detect": ([py + ["detect", str(CONFIGS / "detect_tiny.yaml"), f"out={root / 'detect'}",
                          f"shards={s / 'train'}", f"eval_shards={s / 'test'}", "frames_per_clip=2",
                          f"workers={cfg.workers}", f"av.avloc.clusters={cfg.classes}", f"av.steps={cfg.steps}",
                          f"av.ckpt.every={cfg.steps}", f"av.loader.workers={cfg.workers}",
                          f"detector.steps={cfg.steps}", "detector.warmup_steps=5", "av.avloc.cluster_start=0",
                          "av.optim.warmup_steps=5", f"av.loader.video.size={cfg.size}", "shot_trials=1"]],
                   2 * (n + n_test)),
        "export": ([py + ["export", f"run_dir={root / 'gdt'}", f"out={root / 'export'}"]], 1),
        "eval": ([py + ["eval", f"export={root / 'export'}", f"train_shards={s / 'train'}",
                        f"test_shards={s / 'test'}", f"out={root / 'eval'}", f"workers={cfg.workers}"]],
                 n + n_test),
        "report": ([py + ["report", f"run_dir={root}", f"test_shards={s / 'test'}"]], n_test),
    }
    return {k: ([[*cmd, "--quiet"] for cmd in cmds], items) for k, (cmds, items) in stages.items()}


def _compare(stage: str, small: dict, large: dict, doc: dict) -> dict:
    out = {"time_per_item_ratio": round(large["s_per_item"] / max(small["s_per_item"], 1e-12), 3),
           "cpu_per_item_ratio": round(large["cpu_s"] / large["items"] / max(small["cpu_s"] / small["items"], 1e-12), 3),
           "rss_ratio": round(large["peak_rss_mb"] / max(small["peak_rss_mb"], 1e-9), 3)}
    added = large["items"] - small["items"]
    growth = (large["peak_rss_mb"] - small["peak_rss_mb"]) * 2**20 / max(added, 1)
    out["rss_growth_bytes_per_added_item"] = round(growth, 1)
    if stage in FLAT:
        out["goal"] = f"time_per_item_ratio <= {TIME_RATIO} and rss_ratio <= {RSS_RATIO}"
        out["met"] = out["time_per_item_ratio"] <= TIME_RATIO and out["rss_ratio"] <= RSS_RATIO
    elif stage in ARRAY:
        allowed = doc[stage]["bytes"] * added / 2**20 + RSS_NOISE_MB
        out.update(documented_bytes_per_sample=doc[stage]["bytes"], documented_arrays=doc[stage]["what"],
                   rss_growth_mb=round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
                   allowed_rss_growth_mb=round(allowed, 1))
        out["goal"] = (f"time_per_item_ratio <= {TIME_RATIO} and RSS growth <= documented bytes per sample x "
                       f"added samples + {RSS_NOISE_MB} MB (allocator granularity)")
        out["met"] = out["time_per_item_ratio"] <= TIME_RATIO and out["rss_growth_mb"] <= allowed
    return out


def run(cfg: Config) -> dict:
    sizes = [cfg.n, cfg.n * cfg.factor]
    scratch = Path(cfg.scratch or tempfile.mkdtemp(prefix="bench_scale."))
    doc = documented_bytes(cfg)
    started = time.time()
    result: dict = {"sizes": sizes, "stages": {}, "items": {s: ITEMS[s] for s in cfg.stages},
                    "cpus": len(os.sched_getaffinity(0)), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "config": asdict(cfg)}
    try:
        runs: dict[str, dict[int, dict]] = {s: {} for s in cfg.stages}
        for n in sizes:
            root = scratch / f"n{n}"
            root.mkdir(parents=True, exist_ok=True)
            commands = _stage_commands(cfg, root, n)
            for stage in cfg.stages:
                cmds, items = commands[stage]
                m = measure(cmds, root / f"{stage}.log")
                m.update(items=items, s_per_item=round(m["wall_s"] / items, 6))
                runs[stage][n] = m
                print(f"bench scale: n={n} {stage}: {m['wall_s']:.1f} s, {m['peak_rss_mb']:.0f} MB peak RSS",
                      file=sys.stderr, flush=True)
        for stage in cfg.stages:
            small, large = runs[stage][sizes[0]], runs[stage][sizes[1]]
            result["stages"][stage] = {f"n{sizes[0]}": small, f"n{sizes[1]}": large,
                                       **_compare(stage, small, large, doc)}
    finally:
        if not cfg.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    judged = {s: r["met"] for s, r in result["stages"].items() if "met" in r}
    result.update(met=sorted(s for s, ok in judged.items() if ok),
                  not_met=sorted(s for s, ok in judged.items() if not ok),
                  total_s=round(time.time() - started, 1),
                  load_avg_at_end=[round(x, 2) for x in os.getloadavg()])
    if cfg.json:
        write_json(cfg.json, result, indent=2)
    print(json.dumps(result, indent=2))
    return result
