"""``python -m jobs shard``: the shard stage as a job array, one task per slice ``i/n``.

Which slices still have work is the stage's own answer (``incomplete_slices``: a shard
is complete once its stats file with the same fingerprint exists), so a re-run submits
only those, and the launcher never needs to know the shard layout. When every shard is
complete but an ``index.json`` is missing (the last task died before merging), one
``merge_only`` job builds it.
"""
from __future__ import annotations

from typing import Any

from jobs.config import LaunchConfig, SlurmConfig, load_slurm
from jobs.executor import default_cluster
from jobs.launch import submit
from jobs.tasks import StageTask, replace_key
from pipeline.config import ConfigError
from pipeline.registry import resolve
from pipeline.stages import STAGES


# the shard stage's planning functions (the stage's entry, pipeline.shard.stage, only takes
# the folder's locks around the driver); resolved lazily so `--help` does not pay for torch
DRIVER = "pipeline.shard.driver"


def plan_slices(cfg: Any, slices: int, cluster: str, slurm: SlurmConfig,
                module: str = DRIVER) -> tuple[int, list[int]]:
    """(n, incomplete slice indices): n is ``slices``, else one per array slot on SLURM
    (at most one per shard) and 1 elsewhere, where the stage's own workers do the rest."""
    if getattr(cfg, "slice", ""):
        raise ConfigError(f"slice={cfg.slice}: the launcher sets the slice of each array "
                          "task; choose how many with slices=N")
    n_shards = len(resolve(f"{module}:make_plan")(cfg).jobs)
    n = slices or (min(slurm.array_parallelism, max(n_shards, 1)) if cluster == "slurm" else 1)
    return n, resolve(f"{module}:incomplete_slices")(cfg, n)


def launch_shard(cfg: Any, launch: LaunchConfig | None = None,
                 slurm: SlurmConfig | None = None) -> tuple[list, list[str]]:
    """Submit the incomplete slices as one array; returns (jobs, labels)."""
    launch = launch or LaunchConfig()
    slurm = slurm or load_slurm("shard")
    stage = STAGES["shard"]
    cluster = launch.cluster or default_cluster()
    n, todo = plan_slices(cfg, launch.slices, cluster, slurm)  # the plan is the driver's
    task = StageTask(stage.target)
    if todo:
        cfgs = [replace_key(cfg, "slice", f"{i}/{n}") for i in todo]
        labels = [f"slice {i}/{n}" for i in todo]
        print(f"shard: {len(todo)} of {n} slice(s) incomplete")
    elif not all(p.exists() for p in resolve(f"{DRIVER}:make_plan")(cfg).indexes):
        cfgs, labels = [replace_key(cfg, "merge_only", True)], ["merge"]
        print("shard: every shard is complete but an index.json is missing: one merge job")
    else:
        print(f"shard: every shard in {cfg.output} is complete; nothing to submit")
        return [], []
    return submit("shard", task, cfgs, labels, launch, slurm, cfg), labels
