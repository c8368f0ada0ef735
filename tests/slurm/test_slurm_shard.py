"""The shard stage as a SLURM array over a small real corpus; a re-run submits only the
slices that still own an incomplete shard."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slurm


def shard_cli(env, corpus, out, job_dir):
    return subprocess.run(
        [sys.executable, "-m", "jobs", "shard", f"input={corpus / 'manifest.jsonl'}",
         f"output={out}", "videos_per_shard=6", "clip_seconds=3", "short_side=64", "workers=1",
         "slices=2", "cluster=slurm", f"job_dir={job_dir}", "--wait", "slurm.cpus_per_task=1",
         "slurm.mem=null", "slurm.time_min=10"],
        capture_output=True, text=True, env=env, timeout=600)


def test_shard_array_end_to_end_then_only_unfinished_slices(slurm_cluster, synth_corpus, tmp_path):
    out = tmp_path / "shards"
    first = shard_cli(slurm_cluster.env, synth_corpus, out, tmp_path / "jobs1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "shard: 2 of 2 slice(s) incomplete" in first.stdout
    [launch] = json.loads((tmp_path / "jobs1" / "jobs.json").read_text())["launches"]
    assert [j["label"] for j in launch["jobs"]] == ["slice 0/2", "slice 1/2"]
    assert all("_" in j["job_id"] for j in launch["jobs"])  # one array, two tasks
    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["clips"] == 24
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [f"shard-{i:06d}.tar" for i in range(4)]

    again = shard_cli(slurm_cluster.env, synth_corpus, out, tmp_path / "jobs2")
    assert again.returncode == 0 and "nothing to submit" in again.stdout
    assert not (tmp_path / "jobs2").exists()

    (out / "shard-000003.stats.json").unlink()  # shard 3 belongs to slice 3 % 2 = 1
    (out / "index.json").unlink()
    redo = shard_cli(slurm_cluster.env, synth_corpus, out, tmp_path / "jobs3")
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert "shard: 1 of 2 slice(s) incomplete" in redo.stdout
    [launch] = json.loads((tmp_path / "jobs3" / "jobs.json").read_text())["launches"]
    assert [j["label"] for j in launch["jobs"]] == ["slice 1/2"]
    assert "'shards_written': 1, 'shards_skipped': 1" in redo.stdout
    assert json.loads((out / "index.json").read_text())["totals"] == index["totals"]

    (out / "index.json").unlink()  # every shard complete, the merge lost: one merge job
    merge = shard_cli(slurm_cluster.env, synth_corpus, out, tmp_path / "jobs4")
    assert merge.returncode == 0, merge.stdout + merge.stderr
    assert "index.json is missing: one merge job" in merge.stdout
    assert json.loads((out / "index.json").read_text())["totals"] == index["totals"]
