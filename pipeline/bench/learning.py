"""``python -m pipeline bench learning --seeds 0,1,2``: the demo's learned stages once per
seed, every held-out metric per seed with its mean, spread and random-init value, as JSON
with the date, the machine and the recipes' versions; ``--markdown FILE`` renders the
README's demo table from it (``--from_json FILE`` renders an earlier run without training).

Why: hand-copied tables drift from the recipes (the README's detection figure was measured
at an older step count). A table that is the output of one command, stamped with the
recipe hashes it was measured with, cannot.

The corpus and its shards are made once (by the first seed's demo) and linked into the
other seeds' folders: seeds change the learned steps only (initialisation, loader draws,
detector), as the demo's ``seed`` does.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import ConfigError, load_config
from pipeline.errors import InputError
from pipeline.eval.modalities import FLAG, ROWS, clearly_above
from pipeline.io.atomic import write_json, write_text

SHARED = ("corpus", "shards", "shards_96")  # made by the first seed, linked by the others
# metrics beyond the per-modality rows: (key, label); no random-init value for these
EXTRA = (("selavi_nmi", "SeLaVi NMI (training set)"), ("map50", "detection mAP@0.5"))
RECIPES = ("gdt_config", "selavi_config", "detect_config", "finetune_config")


@dataclass
class Config:
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds of the learned steps, e.g. --seeds 0,1,2"})
    out: str = field(default="bench_learning", metadata={"help": "folder of the per-seed demo runs (seed<N>/)"})
    json: str = field(default="", metadata={"help": "result JSON (default: OUT/learning.json)"})
    markdown: str = field(default="", metadata={"help": "also write the README demo table (markdown) here"})
    from_json: str = field(default="", metadata={"help": "render --markdown from this earlier result JSON; nothing is run"})
    demo: list[str] = field(default_factory=list, metadata={"help": "extra key=value for every seed's demo, e.g. [n_train=64, 'gdt_overrides=[steps=50]']"})

    def seed_list(self) -> list[int]:
        return parse_seeds(self.seeds)

    def check(self) -> None:
        self.seed_list()


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; one clear error naming the key otherwise."""
    try:
        seeds = [int(s) for s in str(text).replace(" ", "").split(",") if s != ""]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds={text!r}: need distinct non-negative integers, e.g. 0,1,2", key="seeds")
    return seeds


def _sha1(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def _commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=here, timeout=10)
        if res.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here, timeout=10).stdout.strip()
        return res.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    import torch
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}


def _link_shared(first: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        src, dst = first / name, out / name
        if src.exists() and not dst.exists():
            dst.symlink_to(src.resolve(), target_is_directory=True)


def summarise(per_seed: dict[int, dict]) -> dict:
    """{key: {label, modality, per_seed, mean, std, random_init (per seed), random_init_mean,
    flagged}} over the seeds' eval.json dicts."""
    out: dict = {}
    rows = [(mod, key, label) for mod, key, label in ROWS] + [("", key, label) for key, label in EXTRA]
    seeds = sorted(per_seed)
    for mod, key, label in rows:
        vals = [per_seed[s].get(key) for s in seeds]
        if any(v is None for v in vals):
            continue
        entry = {"label": label, "modality": mod, "per_seed": vals, "mean": float(np.mean(vals)),
                 "std": float(np.std(vals))}
        rnd = [per_seed[s].get("random_init", {}).get(key) for s in seeds]
        if all(r is not None for r in rnd):
            entry["random_init"] = rnd
            entry["random_init_mean"] = float(np.mean(rnd))
            entry["flagged"] = not all(clearly_above(key, v, r) for v, r in zip(vals, rnd))
        out[key] = entry
    return out


def markdown(result: dict) -> str:
    """The README's demo table: each metric's mean +- std and per-seed values beside random
    init, the flag where training did not clearly win, and what it was measured with."""
    seeds = result["seeds"]
    n = result.get("n_test_videos")
    head = f"held-out{f', {n} videos' if n else ''}"
    lines = [f"| {head} | trained, mean ± std (seeds {', '.join(map(str, seeds))}) | per seed | random init | |",
             "|---|---|---|---|---|"]
    for key, m in result["metrics"].items():
        name = f"{m['modality']}: {m['label']}" if m["modality"] else m["label"]
        per = " / ".join(f"{v:.3f}" for v in m["per_seed"])
        rnd = f"{m['random_init_mean']:.3f}" if "random_init_mean" in m else ""
        flag = FLAG if m.get("flagged") else ""
        lines.append(f"| {name} | {m['mean']:.3f} ± {m['std']:.3f} | {per} | {rnd} | {flag} |")
    rec = ", ".join(f"{Path(r['path']).name} {r['sha1']}" for r in result["recipes"].values())
    mach = result["machine"]
    lines.append("")
    lines.append(f"`python -m pipeline bench learning --seeds {','.join(map(str, seeds))}`, "
                 f"{result['date']}, {mach['processor']} ({mach['cpus']} CPUs), torch {mach['torch']}, "
                 f"commit {result.get('commit') or '?'}; recipes (sha1): {rec}"
                 + (f"; settings: {' '.join(result['demo'])}" if result.get("demo") else ""))
    return "\n".join(lines) + "\n"


def run(cfg: Config) -> dict:
    if cfg.from_json:
        path = Path(cfg.from_json)
        if not path.is_file():
            raise InputError(f"from_json={path}: no such file")
        result = json.loads(path.read_text())
        if "metrics" not in result or "seeds" not in result:
            raise InputError(f"{path}: not a `bench learning` result (no 'metrics' or 'seeds')")
        text = markdown(result)
        if cfg.markdown:
            write_text(cfg.markdown, text)
        print(text)
        return result
    seeds = cfg.seed_list()
    commit = _commit()  # the code the seeds run with, taken before they start
    from pipeline.demo.stage import DemoConfig, run as demo_run
    root = Path(cfg.out)
    per_seed, times, first = {}, {}, None
    demo_cfg = None
    for seed in seeds:
        out = root / f"seed{seed}"
        if first is not None:
            _link_shared(first, out)
        demo_cfg = load_config(DemoConfig, [], [f"out={out}", f"seed={seed}", *cfg.demo])
        res = demo_run(demo_cfg)
        per_seed[seed], times[seed] = res["eval"], res["times"]
        first = first or out
    recipes = {name: {"path": getattr(demo_cfg, name), "sha1": _sha1(getattr(demo_cfg, name))} for name in RECIPES}
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine(), "commit": commit, "recipes": recipes, "demo": list(cfg.demo),
              "seeds": seeds, "n_test_videos": per_seed[seeds[0]].get("n_test_videos"),
              "metrics": summarise(per_seed), "times_s": {str(s): t for s, t in times.items()}}
    write_json(cfg.json or root / "learning.json", result, indent=2)
    if cfg.markdown:
        write_text(cfg.markdown, markdown(result))
    print(markdown(result))
    return result
