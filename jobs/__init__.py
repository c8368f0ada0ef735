"""Launchers: *where* a stage runs (SLURM, a local process, this process), never *what*
it does. Built on submitit; every job calls the same stage functions as
``python -m pipeline``. Nothing in ``pipeline/`` imports this package.

``python -m jobs --help`` lists the commands. Python API: ``launch_stage`` and
``launch_train`` return submitit jobs, ``launch_shard`` returns (jobs, labels).
"""
from jobs.config import LaunchConfig, SlurmConfig, load_launch, load_slurm
from jobs.launch import launch_stage, wait
from jobs.shard import launch_shard
from jobs.train import launch_train

__all__ = ["LaunchConfig", "SlurmConfig", "load_launch", "load_slurm", "launch_stage",
           "launch_shard", "launch_train", "wait"]
