"""Training on two SLURM nodes with the real engine (DeepSpeed on gloo, one task per
node): every rank on its own node, shards split by node and worker so that no clip is
seen twice in an epoch, negatives gathered across the nodes; then pre-empted at a step,
requeued, resumed there, and ending with exactly the parameters of the uninterrupted run."""
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import submitit
from safetensors.torch import load_file

from jobs.config import LaunchConfig
from jobs.status import render
from jobs.train import launch_train
from pipeline.cli import build_config
from pipeline.stages import STAGES
from slurm_standin import HOLD_AT

pytestmark = pytest.mark.slurm
STEPS, BATCH, CLIPS = 8, 3, 24  # 24 clips in 4 shards; 2 nodes x 2 workers: one shard each
EPOCH = 2  # batches per rank per epoch (equal on both ranks): 3 clips per worker, within every shard
ENGINE = ["model.video.name=r3d_tiny", "model.video.args={widths: [4, 8, 8, 16]}",
          "model.audio.name=resnet_tiny", "model.audio.args={widths: [4, 8, 8, 16]}",
          "model.embed_dim=16", f"loader.batch_size={BATCH}", "loader.workers=2",
          "loader.resampled=false", f"loader.epoch_batches={EPOCH}", "loader.shuffle_buffer=4", "loader.clip.frames=4",
          "loader.video.size=32", "loader.audio.seconds=0.5", "gdt.reversal=off", "gdt.shift=off",
          "loader.clip.positions=1", "loader.clip.reverse=false", f"steps={STEPS}", "log_every=1",
          "optim.warmup_steps=2", "tensorboard=false", "threads=1", "sample_log=true"]
NODES = ["slurm.nodes=2", "slurm.tasks_per_node=1", "slurm.gpus_per_node=0",
         "slurm.cpus_per_task=1", "slurm.mem=null", "slurm.time_min=10", "slurm.signal_delay_s=30"]


def _samples(run: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / f"rank{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(slurm_cluster, synth_shards, tmp_path_factory):
    """``python -m jobs train ... slurm.nodes=2 slurm.tasks_per_node=1``, as a user types it."""
    tmp = tmp_path_factory.mktemp("train_2nodes")
    run, job_dir = tmp / "run", tmp / "jobs"
    proc = subprocess.run([sys.executable, "-m", "jobs", "train", f"out={run}",
                           f"loader.shards={synth_shards}", *ENGINE, *NODES, "cluster=slurm",
                           f"job_dir={job_dir}", "--wait", "--quiet"],
                          capture_output=True, text=True, env=slurm_cluster.env, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [launch] = json.loads((job_dir / "jobs.json").read_text())["launches"]
    job_id = launch["jobs"][0]["job_id"]
    results = submitit.SlurmJob(job_dir / "%j", job_id, tasks=(0, 1)).results()
    return run, results


def test_two_nodes_train_with_a_disjoint_split_and_global_negatives(reference_run, slurm_cluster):
    run, results = reference_run
    assert [r["rank"] for r in results] == [0, 1]
    assert sorted(r["node"] for r in results) == slurm_cluster.nodes  # one rank per node
    for r in results:
        assert (r["status"], r["step"], r["world_size"], r["restarts"]) == ("done", STEPS, 2, 0)
        assert r["param_digest"] == results[0]["param_digest"]
    seen = {rank: _samples(run, rank) for rank in (0, 1)}
    assert all([s["step"] for s in seen[rank]] == list(range(1, STEPS + 1)) for rank in (0, 1))
    epochs = {s["epoch"] for rank in (0, 1) for s in seen[rank]}
    assert epochs == set(range(STEPS // EPOCH))
    for epoch in epochs:  # each epoch: no clip twice over both nodes (disjoint shards), equal shares
        keys = {rank: [k for s in seen[rank] if s["epoch"] == epoch for k in s["keys"]] for rank in (0, 1)}
        both = Counter(keys[0] + keys[1])
        assert set(both.values()) == {1}, both.most_common(3)
        assert len(keys[0]) == len(keys[1]) == EPOCH * BATCH
    # the shards go to the nodes anew each epoch (shuffled), and over the run the two nodes
    # read more than one node's share of the clips
    assert len({k for rank in (0, 1) for s in seen[rank] for k in s["keys"]}) > CLIPS // 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert all(r["global_batch"] == 2 * BATCH for r in rows)  # each row scored against both nodes' clips


def test_preempted_two_node_job_resumes_at_the_step_with_identical_parameters(
        reference_run, synth_shards, tmp_path):
    ref_run, ref_results = reference_run
    run = tmp_path / "run"
    cfg = build_config(STAGES["train"], [], [f"out={run}", f"loader.shards={synth_shards}", *ENGINE])
    from jobs.config import load_slurm
    slurm = load_slurm("train", "", tuple(o[len("slurm."):] for o in NODES))
    launch = LaunchConfig(cluster="slurm", job_dir=str(tmp_path / "jobs"), wait=False)
    [job] = launch_train(cfg, launch, slurm, target="slurm_standin:held_train")
    held = [run / f"held_rank{r}" for r in (0, 1)]
    while not all(p.exists() for p in held):  # both ranks parked at step HOLD_AT
        assert not job.done(), job.stderr()
        time.sleep(0.5)
    job._interrupt()  # what SLURM sends on pre-emption: SIGTERM, then USR2 to every task
    results = job.results()
    assert sorted(r["node"] for r in results) == sorted(r["node"] for r in ref_results)
    for r in results:
        assert (r["status"], r["step"], r["restarts"]) == ("done", STEPS, 1)
        assert r["resumed_from"].endswith(f"step_{HOLD_AT:08d}")
        assert r["param_digest"] == ref_results[0]["param_digest"]  # exactly the uninterrupted run
    a = load_file(ref_run / "final" / "method.safetensors")
    b = load_file(run / "final" / "method.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    for rank in (0, 1):  # the same clips in the same steps, across the requeue
        assert [(s["step"], s["keys"]) for s in _samples(run, rank)] == \
            [(s["step"], s["keys"]) for s in _samples(ref_run, rank)]
    log = job.stderr() or ""
    assert "handing over to submitit to requeue" in log
    assert "requeueing slurm_standin:held_train" in log
    assert f"{job.job_id}: DONE" in render(tmp_path / "jobs")
