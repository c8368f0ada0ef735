"""``python -m jobs train``: one job of nodes x tasks-per-node tasks, one task per GPU.

Each task gets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR from submitit's
``TorchDistributedEnvironment`` (the first host of the job's node list), and is
checkpointable: on the pre-emption or time-limit signal the engine saves on all ranks
and the job is requeued with ``resume=auto`` (see ``jobs.preemption``).
"""
from __future__ import annotations

from typing import Any

from jobs.config import LaunchConfig, SlurmConfig, load_slurm
from jobs.launch import submit
from jobs.tasks import ENGINE, TrainTask, with_resume_auto


def launch_train(cfg: Any, launch: LaunchConfig | None = None, slurm: SlurmConfig | None = None,
                 target: str = ENGINE, name: str = "train") -> list:
    """Submit training; ``target(cfg, stop_requested)`` follows the engine's contract."""
    launch = launch or LaunchConfig()
    slurm = slurm or load_slurm("train")
    if slurm.gpus_per_node and slurm.tasks_per_node != slurm.gpus_per_node:
        from pipeline.config import ConfigError
        raise ConfigError(f"train runs one task per GPU: tasks_per_node={slurm.tasks_per_node} "
                          f"but gpus_per_node={slurm.gpus_per_node}")
    with_resume_auto(cfg)  # fail now, not at the first requeue, if cfg cannot resume
    return submit(name, TrainTask(target), [cfg], [""], launch, slurm, cfg)
