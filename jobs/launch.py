"""Submit one job or one array: job folder, resolved config, record, optional wait.

Every launcher (``run``, ``train``, ``shard``) ends here, so job folders look the same:
``config.yaml`` (the stage config, resolved), ``slurm.yaml`` (the resources),
``jobs.json`` (job ids), and submitit's per-job subfolders with pickles and logs.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import OmegaConf

from jobs import record
from jobs.config import LaunchConfig, SlurmConfig
from jobs.executor import default_cluster, describe, make_executor
from jobs.status import error_summary
from pipeline.config import save_config, to_yaml
from pipeline.io.atomic import write_text


def job_folder(launch: LaunchConfig, stage: str) -> Path:
    if launch.job_dir:
        return Path(launch.job_dir).resolve()
    return (Path("runs") / "jobs" / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()


def submit(stage: str, task: Callable[[Any], Any], cfgs: Sequence[Any], labels: Sequence[str],
           launch: LaunchConfig, slurm: SlurmConfig, base_cfg: Any) -> list:
    """Submit ``task(cfg)`` for each cfg (an array when several); [] on a dry run."""
    cluster = launch.cluster or default_cluster()
    folder = job_folder(launch, stage)
    if launch.dry_run:
        print(f"# dry run: {len(cfgs)} job(s) of stage '{stage}' on cluster={cluster}")
        print(f"# job folder: {folder}")
        if len(labels) > 1 or labels[0]:
            print("# tasks: " + ", ".join(labels))
        print(describe(cluster, folder, slurm, stage, len(cfgs)))
        print("# stage config (resolved):")
        print(to_yaml(base_cfg))
        return []
    folder.mkdir(parents=True, exist_ok=True)
    save_config(base_cfg, folder / "config.yaml")
    write_text(folder / "slurm.yaml", OmegaConf.to_yaml(OmegaConf.structured(slurm)))
    executor = make_executor(cluster, folder, slurm, stage)
    if len(cfgs) == 1:
        jobs = [executor.submit(task, cfgs[0])]
    else:
        jobs = executor.map_array(task, list(cfgs))
    n_tasks = slurm.nodes * slurm.tasks_per_node
    record.append(folder, stage, cluster, [
        {"job_id": str(j.job_id), "label": label, "tasks": n_tasks} for j, label in zip(jobs, labels)])
    ids = ", ".join(str(j.job_id) for j in jobs)
    print(f"submitted {len(jobs)} job(s) of '{stage}' on {cluster}: {ids}")
    print(f"job folder: {folder}   (python -m jobs status {folder})")
    return jobs


def wait(jobs: list, labels: Sequence[str]) -> int:
    """Print each job's result (rank 0's for multi-task jobs); 1 if any failed."""
    failed = 0
    for job, label in zip(jobs, labels):
        name = f"{job.job_id}{' [' + label + ']' if label else ''}"
        try:
            result = job.results()[0]
        except Exception as err:  # the job's own error, brought back by submitit
            failed += 1
            print(f"job {name} FAILED: {error_summary(str(err))}")
            continue
        print(f"job {name} done: {result}")
    return 1 if failed else 0


def launch_stage(stage_name: str, files: Sequence[str] = (), overrides: Sequence[str] = (),
                 launch: LaunchConfig | None = None, slurm: SlurmConfig | None = None) -> list:
    """``python -m jobs run STAGE``: any registered stage as one single-task job."""
    from jobs.config import load_slurm
    from jobs.tasks import StageTask
    from pipeline.cli import build_config
    from pipeline.stages import STAGES

    stage = STAGES[stage_name]
    cfg = build_config(stage, list(files), list(overrides))
    launch = launch or LaunchConfig()
    slurm = slurm or load_slurm(stage_name)
    return submit(stage_name, StageTask(stage.target), [cfg], [""], launch, slurm, cfg)

