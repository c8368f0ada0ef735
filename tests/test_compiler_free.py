"""No C is compiled at run time: with every compiler on PATH replaced by a tripwire, the
Sinkhorn solver's CPU kernels and the loader run and give bit-identical results."""
import os
import subprocess
import sys
from pathlib import Path

import torch

PROBE = Path(__file__).with_name("compiler_free_probe.py")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "ld", "as", "nvcc")


def _run_probe(shards: Path, out: Path, path: str, cc: str | None) -> str:
    env = dict(os.environ, PATH=path)
    env.pop("CC", None)
    if cc:
        env["CC"] = cc
    proc = subprocess.run([sys.executable, str(PROBE), str(shards), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def test_sinkhorn_and_loader_need_no_compiler(synth_shards, tmp_path):
    trip, log = tmp_path / "tripwire", tmp_path / "compiler_calls.log"
    trip.mkdir()
    for name in COMPILERS:
        script = trip / name
        script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {log}\nexit 1\n")
        script.chmod(0o755)
    # the tripwire works: a compiler looked up on this PATH is caught and logged
    subprocess.run(["cc", "--version"], env={"PATH": str(trip)}, capture_output=True)
    assert log.read_text().startswith(str(trip / "cc"))
    log.unlink()
    stderr = _run_probe(synth_shards, tmp_path / "without.pt", str(trip), str(trip / "cc"))
    assert not log.exists(), f"a compiler was called: {log.read_text()}"
    # two solves, one line saying which backend ran
    assert stderr.count("sinkhorn backend: numba") == 1, stderr[-3000:]
    _run_probe(synth_shards, tmp_path / "with.pt", os.environ.get("PATH", ""), None)
    without = torch.load(tmp_path / "without.pt", weights_only=True)
    with_cc = torch.load(tmp_path / "with.pt", weights_only=True)
    assert without.keys() == with_cc.keys() and any(k.startswith("batch.") for k in without)
    for key, value in without.items():
        assert torch.equal(value, with_cc[key]), key
