"""submitit executors for ``cluster=slurm|local|debug`` built from one ``SlurmConfig``.

The same parameter dict feeds the real ``SlurmExecutor`` and the ``--dry-run`` sbatch
script, so a dry run prints exactly what would be submitted.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import submitit

from jobs.config import SlurmConfig
from pipeline.compat import sbatch_script
from pipeline.config import ConfigError

_SLURM_CONF_PLACES = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf")


def default_cluster() -> str:
    """``slurm`` where ``sbatch`` is on PATH and a SLURM config can be found, else ``local``.

    Installing the client package alone (as the test machine does) does not make a
    cluster, so a config file (or ``SLURM_CONF``) is required as well.
    """
    if shutil.which("sbatch") is None:
        return "local"
    if os.environ.get("SLURM_CONF") or any(Path(p).exists() for p in _SLURM_CONF_PLACES):
        return "slurm"
    return "local"


def slurm_parameters(s: SlurmConfig, name: str, array_size: int | None = None) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` keywords (sbatch names) for ``s``."""
    params: dict[str, Any] = {
        "job_name": s.job_name or name, "time": s.time_min, "nodes": s.nodes,
        "ntasks_per_node": s.tasks_per_node, "cpus_per_task": s.cpus_per_task,
        "signal_delay_s": s.signal_delay_s, "array_parallelism": s.array_parallelism,
        "stderr_to_stdout": False,
    }
    if s.gpus_per_node:
        params["gpus_per_node"] = s.gpus_per_node
    for key in ("partition", "mem", "account", "qos", "constraint"):
        if getattr(s, key):
            params[key] = getattr(s, key)
    if s.setup:
        params["setup"] = list(s.setup)
    if s.extra:
        params["additional_parameters"] = dict(s.extra)
    if array_size is not None and array_size > 1:
        params["map_count"] = array_size  # only for the dry-run script; submitit sets it itself
    return params


def local_parameters(s: SlurmConfig, name: str) -> dict[str, Any]:
    if s.nodes != 1:
        raise ConfigError(f"cluster=local runs on one node; got nodes={s.nodes} "
                          "(use cluster=slurm or slurm.nodes=1)")
    return {"name": s.job_name or name, "timeout_min": s.time_min,
            "tasks_per_node": s.tasks_per_node, "gpus_per_node": s.gpus_per_node,
            "signal_delay_s": s.signal_delay_s}


def make_executor(cluster: str, folder: Path, s: SlurmConfig, name: str) -> submitit.Executor:
    """An executor writing its pickles and logs to ``folder`` (job id substituted)."""
    path = folder / "%j"
    if cluster == "slurm":
        if shutil.which("srun") is None:
            raise ConfigError("cluster=slurm but srun is not on PATH (use cluster=local)")
        ex = submitit.SlurmExecutor(path, max_num_timeout=s.max_num_timeout)
        params = slurm_parameters(s, name)
        params.pop("map_count", None)
        ex.update_parameters(**params)
        return ex
    if cluster == "local":
        ex = submitit.LocalExecutor(path, max_num_timeout=s.max_num_timeout)
        params = local_parameters(s, name)
        params.pop("name")
        ex.update_parameters(**params)
        return ex
    if cluster == "debug":
        return submitit.DebugExecutor(path)
    raise ConfigError(f"cluster={cluster}: choose from slurm, local, debug")


def describe(cluster: str, folder: Path, s: SlurmConfig, name: str, array_size: int) -> str:
    """What would be submitted: the sbatch script on slurm, the parameters elsewhere."""
    path = folder / "%j"
    if cluster == "slurm":  # the script submitit writes
        return sbatch_script(str(path), slurm_parameters(s, name, array_size), sys.executable)
    if cluster == "local":
        params = local_parameters(s, name)
        jobs = f"{array_size} local processes" if array_size > 1 else "1 local process"
        return f"# {jobs} (submitit LocalExecutor), each with:\n" + "\n".join(
            f"{k}: {v}" for k, v in params.items())
    return "# debug: runs in this process when the result is asked for (submitit DebugExecutor)"
