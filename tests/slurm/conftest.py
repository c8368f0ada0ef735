"""A real two-node SLURM cluster for the session, and launcher settings that fit it.

Jobs inherit the submitter's environment (sbatch --export=ALL), so ``SLURM_CONF`` reaches
srun inside the jobs and ``PYTHONPATH`` lets them import this folder's stand-in stages.
"""
import os
from pathlib import Path

import pytest

from jobs.config import LaunchConfig, load_slurm

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def slurm_cluster():
    from slurm_cluster import LocalSlurmCluster

    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    cluster = LocalSlurmCluster().start()
    os.environ["SLURM_CONF"] = str(cluster.conf)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), saved["PYTHONPATH"]) if p)
    try:
        yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cluster.stop()


@pytest.fixture(scope="session")
def node_profile():
    """The stage's real profile from configs/slurm/, shrunk to fit a test node."""
    def make(stage: str, *overrides: str):
        return load_slurm(stage, "", ("time_min=10", "cpus_per_task=1", "mem=null",
                                      "gpus_per_node=0", "signal_delay_s=30", *overrides))
    return make


@pytest.fixture
def launch_cfg(slurm_cluster, tmp_path) -> LaunchConfig:
    return LaunchConfig(cluster="slurm", job_dir=str(tmp_path / "jobs"), wait=False)
