"""Training jobs on the cluster: 2 gloo tasks end to end, then pre-empted and requeued."""
import time
from pathlib import Path

import pytest
import torch

from jobs.config import LaunchConfig
from jobs.status import render
from jobs.train import launch_train
from slurm_standin import StandinConfig

pytestmark = pytest.mark.slurm
TARGET = "slurm_standin:train"


def _launch(tmp: Path, profile, **cfg_kw):
    cfg = StandinConfig(out=str(tmp / "run"), **cfg_kw)
    launch = LaunchConfig(cluster="slurm", job_dir=str(tmp / "jobs"), wait=False)
    [job] = launch_train(cfg, launch, profile("train", "tasks_per_node=2"), target=TARGET)
    return job, cfg


@pytest.fixture(scope="module")
def reference_run(slurm_cluster, tmp_path_factory, node_profile):
    job, cfg = _launch(tmp_path_factory.mktemp("train_ref"), node_profile)
    return job, job.results(), cfg


def test_two_tasks_train_end_to_end(reference_run, slurm_cluster):
    job, results, cfg = reference_run
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        assert (r["status"], r["step"], r["world_size"], r["restarts"]) == ("done", 12, 2, 0)
        assert r["master_addr"] == slurm_cluster.node  # first host of the job's node list
        assert r["params"] == results[0]["params"]
    final = Path(results[0]["checkpoint"])
    assert final.name == "step_000012" and (final / "COMPLETE").exists()
    assert sorted(p.name for p in final.iterdir()) == ["COMPLETE", "model.pt", "rank_0.pt",
                                                       "rank_1.pt"]


def test_preempted_training_requeues_and_resumes_at_the_saved_step(reference_run, tmp_path,
                                                                   node_profile):
    _, ref_results, ref_cfg = reference_run
    job, cfg = _launch(tmp_path, node_profile, hold_at=7)
    held = [Path(cfg.out) / f"held_rank{r}" for r in (0, 1)]
    while not all(p.exists() for p in held):  # both ranks parked at step 7
        assert not job.done(), job.stderr()
        time.sleep(0.5)
    job._interrupt()  # what SLURM sends on pre-emption: SIGTERM, then USR2 to every task
    results = job.results()
    for r in results:
        assert (r["status"], r["step"], r["resumed_from"], r["restarts"]) == ("done", 12, 7, 1)
    saved = Path(cfg.out) / "checkpoints" / "step_000007"
    assert (saved / "COMPLETE").exists()
    assert results[0]["params"] == ref_results[0]["params"]  # exactly the uninterrupted run
    ours = torch.load(Path(results[0]["checkpoint"]) / "model.pt", weights_only=True)
    ref = torch.load(Path(ref_results[0]["checkpoint"]) / "model.pt", weights_only=True)
    for key in ref["model"]:
        assert torch.equal(ours["model"][key], ref["model"][key]), key
    log = job.stderr() or ""
    assert "handing over to submitit to requeue" in log and "requeueing slurm_standin:train" in log
    assert f"{job.job_id}: DONE" in render(tmp_path / "jobs")
