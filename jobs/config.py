"""Typed launcher settings: where a stage runs (``LaunchConfig``) and with which SLURM
resources (``SlurmConfig``, read from a profile in ``configs/slurm/``).

Both go through ``pipeline.config.load_config``, so a misspelt key in a profile or on the
command line is one error naming the key and the file, before anything is submitted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import CONFIGS, ConfigError, load_config

SLURM_PROFILES = CONFIGS / "slurm"
CLUSTERS = ("slurm", "local", "debug")
# profile used when none is given: the stage's own, else default.yaml
STAGE_PROFILES = {"shard": "shard", "train": "train", "finetune": "train", "eval": "eval", "export": "eval"}


@dataclass
class SlurmConfig:
    """Resources of one job (or of each task of an array); sbatch names in brackets."""
    partition: str | None = field(default=None, metadata={"help": "partition [--partition]"})
    time_min: int = field(default=60, metadata={
        "help": "wall-clock limit in minutes [--time]; the pre-emption signal comes "
                "signal_delay_s before it", "min": 1})
    nodes: int = field(default=1, metadata={"help": "nodes [--nodes]", "min": 1})
    tasks_per_node: int = field(default=1, metadata={
        "help": "tasks per node [--ntasks-per-node]; training runs one task per GPU", "min": 1})
    gpus_per_node: int = field(default=0, metadata={"help": "GPUs per node [--gpus-per-node]", "min": 0})
    cpus_per_task: int = field(default=1, metadata={
        "help": "CPU cores per task [--cpus-per-task] (loader workers + 1)", "min": 1})
    mem: str | None = field(default=None, metadata={
        "help": "memory per node, e.g. 64G [--mem]; unset: the cluster's DefMemPerCPU"})
    account: str | None = field(default=None, metadata={"help": "account [--account]"})
    qos: str | None = field(default=None, metadata={"help": "quality of service [--qos]"})
    constraint: str | None = field(default=None, metadata={
        "help": "node features, e.g. a100 [--constraint]"})
    extra: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "any other sbatch parameters, e.g. {exclusive: true, reservation: x}"})
    setup: list[str] = field(default_factory=list, metadata={
        "help": "shell lines run before srun (module load ..., source venv)"})
    array_parallelism: int = field(default=64, metadata={
        "help": "array tasks running at once (the %N of --array)", "min": 1})
    signal_delay_s: int = field(default=120, metadata={
        "help": "seconds between the pre-emption signal (USR2) and the time limit", "min": 0})
    max_num_timeout: int = field(default=3, metadata={
        "help": "requeues allowed after time-outs (submitit; with time_min under ~50 "
                "every signal counts as a time-out)", "min": 0})
    job_name: str = field(default="", metadata={"help": "job name; empty: the stage's name"})


@dataclass
class LaunchConfig:
    """Where and how to submit; set on the command line as key=value or --key value."""
    cluster: str = field(default="", metadata={
        "help": "slurm | local | debug; empty: slurm when sbatch and a SLURM config are "
                "found, else local", "choices": ["", *CLUSTERS]})
    slurm: str = field(default="", metadata={
        "help": "SLURM profile: a name in configs/slurm/ or a YAML path; empty: the "
                "stage's profile (shard, train, eval) or default"})
    job_dir: str = field(default="", metadata={
        "help": "job folder (logs, pickles, resolved config, jobs.json); empty: "
                "runs/jobs/<stage>-<date>-<time>"})
    slices: int = field(default=0, metadata={
        "help": "shard only: number of slices = array tasks; 0: the profile's "
                "array_parallelism", "min": 0})
    wait: bool | None = field(default=None, metadata={
        "help": "wait for the jobs and print their results; default: yes except on slurm"})
    dry_run: bool = field(default=False, metadata={
        "help": "print what would be submitted (sbatch script, parameters, config), submit "
                "nothing"})


def profile_path(name: str) -> Path:
    """A profile name (``train``) or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    path = SLURM_PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SLURM_PROFILES.glob("*.yaml")))
        raise ConfigError(f"slurm={name}: no profile {path} (known: {known})")
    return path


def load_slurm(stage: str, profile: str = "", overrides: tuple[str, ...] = ()) -> SlurmConfig:
    """The stage's SLURM profile with ``slurm.KEY=VALUE`` overrides (prefix removed)."""
    name = profile or STAGE_PROFILES.get(stage, "default")
    if not profile and not (SLURM_PROFILES / f"{name}.yaml").is_file():
        name = "default"
    try:
        cfg = load_config(SlurmConfig, [profile_path(name)], overrides)
    except ConfigError as err:  # name the override as it was typed: slurm.KEY=VALUE
        msg = str(err)
        for item in overrides:
            msg = msg.replace(f"command line '{item}'", f"command line 'slurm.{item}'")
        raise ConfigError(msg) from None
    return cfg


def load_launch(overrides: tuple[str, ...] = ()) -> LaunchConfig:
    return load_config(LaunchConfig, [], overrides)
