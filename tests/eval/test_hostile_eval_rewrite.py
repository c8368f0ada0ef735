"""A failed eval rewrite (issue 26, item 6): under a real ``RLIMIT_FSIZE`` (``ulimit -f``)
the results and the config that made them stay the old pair, and no temporary is left
in the folder; a temporary that a killed run left is removed by the next run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.config import load_config
from pipeline.eval.stage import EvalConfig, run

ROOT = Path(__file__).resolve().parents[2]
# the real eval command under a real RLIMIT_FSIZE (``ulimit -f``), set once everything is
# imported: importing torch.distributed writes a generated module, which would fail first
LIMITED_EVAL = """
import resource, sys
import torch.distributed.nn  # noqa: F401
from pipeline.cli import main
import pipeline.eval.stage  # noqa: F401
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(["eval", *sys.argv[2:]]))
"""


def args(export: Path, shards: Path, out: Path, seed: int) -> list[str]:
    return [f"export={export}", f"train_shards={shards}", f"test_shards={shards}", f"out={out}",
            "workers=0", "batch_size=8", f"seed={seed}"]


def temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def test_a_failed_eval_rewrite_keeps_results_and_config_together(tiny_export, synth_shards, tmp_path):
    out = tmp_path / "eval"
    run(load_config(EvalConfig, [], args(tiny_export, synth_shards, out, seed=0)))
    good = {name: (out / name).read_bytes() for name in ("eval.json", "eval_config.yaml")}
    assert b"seed: 0" in good["eval_config.yaml"]
    limit = len(good["eval_config.yaml"]) + 256  # the new config fits; the results do not
    assert len(good["eval.json"]) > limit
    res = subprocess.run([sys.executable, "-c", LIMITED_EVAL, str(limit), *args(tiny_export, synth_shards, out, seed=1),
                          "--quiet"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0 and "File too large" in res.stderr, res.stderr[-2000:]
    assert "pipeline/eval/" in res.stderr and "instantiator" not in res.stderr, res.stderr[-2000:]  # in eval's writes
    assert {name: (out / name).read_bytes() for name in good} == good  # the old pair, whole
    assert temporaries(out) == []
    # a temporary of a killed feature writer (SIGKILL runs no clean-up) goes with the next run
    stale = out / "features" / "trained" / "train" / ".video_feat.npy.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 64)
    run(load_config(EvalConfig, [], args(tiny_export, synth_shards, out, seed=1)))
    assert temporaries(out) == [] and b"seed: 1" in (out / "eval_config.yaml").read_bytes()
