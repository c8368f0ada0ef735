"""``python -m jobs <command> [launcher keys] [stage CONFIG.yaml ...] [stage key=value ...]``.

Commands: ``shard`` (array), ``train`` (nodes x tasks), ``finetune`` (a training job
per split), ``run STAGE`` (any stage, one job), ``eval`` / ``export`` (aliases of ``run
eval`` / ``run export``; eval protocols: one array task per split or fold), ``status``.
Launcher keys (``cluster=``, ``slurm=``, ``job_dir=``, ``slices=``, ``--dry-run``,
``--wait``) and SLURM overrides (``slurm.KEY=VALUE``) are taken out first; the rest is
the stage's command line, read exactly as ``python -m pipeline STAGE`` reads it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import textwrap
from typing import Sequence

from jobs.config import LaunchConfig, SlurmConfig, load_launch, load_slurm
from jobs.executor import default_cluster
from pipeline.config import ConfigError, flat_fields
from pipeline.errors import InputError

PROG = "python -m jobs"
LAUNCH_KEYS = {f.name for f in dataclasses.fields(LaunchConfig)}
ALIASES = ("eval", "export")

USAGE = f"""usage: {PROG} <command> [launcher keys] [CONFIG.yaml ...] [key=value ...]

commands:
  shard      the shard stage as a job array, one task per slice; re-running submits
             only the slices whose output is not complete
  train      training on nodes x tasks-per-node (one task per GPU), requeued with
             resume=auto on pre-emption or time limit
  finetune   fine-tuning and its test, one training job per split (as train)
  run STAGE  any registered stage as a single job (eval and export are aliases; eval
             protocol=... with several splits or folds: one array task each)
  status [FOLDER] [--lines N]
             a run's jobs and the tail of their logs (default: newest under runs/jobs)

'{PROG} <command> --help' lists the launcher keys, the SLURM keys and the stage's keys."""


def split_args(args: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(launcher overrides, slurm overrides, stage arguments)."""
    launch, slurm, rest = [], [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--dry-run", "--dry_run"):
            launch.append("dry_run=true")
        elif a == "--wait":
            launch.append("wait=true")
        elif a == "--no-wait":
            launch.append("wait=false")
        else:
            body = a[2:] if a.startswith("--") else a
            key, has_value, value = body.partition("=")
            key = key.replace("-", "_") if a.startswith("--") else key
            is_ours = key in LAUNCH_KEYS or key.startswith("slurm.")
            if is_ours and (has_value or a.startswith("--")):
                if not has_value:
                    if i + 1 >= len(args):
                        raise ConfigError(f"command line: option {a} needs a value")
                    i += 1
                    value = args[i]
                if key.startswith("slurm."):
                    slurm.append(f"{key[len('slurm.'):]}={value}")
                else:
                    launch.append(f"{key}={value}")
            else:
                rest.append(a)
        i += 1
    return launch, slurm, rest


def _keys_help(schema: type, prefix: str = "") -> list[str]:
    lines = []
    for key, tname, default, helptext in flat_fields(schema):
        shown = "REQUIRED" if str(default) == "???" else repr(default)
        lines.append(f"  {prefix}{key} ({tname}, {shown})")
        lines.extend(textwrap.wrap(helptext, 76, initial_indent="      ",
                                   subsequent_indent="      "))
    return lines


def _help(command: str, stage_name: str | None) -> str:
    from pipeline.cli import _stage_help

    lines = [USAGE, "", "launcher keys (key=value or --key value):"] + _keys_help(LaunchConfig)
    lines += ["", "SLURM keys (slurm.KEY=VALUE over the profile from configs/slurm/):"]
    lines += _keys_help(SlurmConfig, "slurm.")
    if stage_name:
        from pipeline.stages import STAGES
        lines += ["", "stage " + _stage_help(STAGES[stage_name], "").split("\n", 1)[1]]
    return "\n".join(lines)


def _launch(command: str, stage_name: str, args: list[str]) -> int:
    from jobs.launch import launch_stage, wait
    from pipeline.cli import build_config, parse_args
    from pipeline.stages import STAGES

    if "-h" in args or "--help" in args:
        print(_help(command, stage_name))
        return 0
    launch_over, slurm_over, rest = split_args(args)
    launch = load_launch(tuple(launch_over))
    slurm = load_slurm(stage_name, launch.slurm, tuple(slurm_over))
    stage = STAGES[stage_name]
    files, overrides, quiet = parse_args(stage, rest)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # jobs inherit the submitter's environment
    if command == "train":
        from jobs.train import launch_train
        jobs = launch_train(build_config(stage, files, overrides), launch, slurm)
        labels = [""]
    elif command == "shard":
        from jobs.shard import launch_shard
        jobs, labels = launch_shard(build_config(stage, files, overrides), launch, slurm)
    elif stage_name in ("eval", "finetune"):
        from jobs.fanout import launch_eval, launch_finetune
        fan = launch_eval if stage_name == "eval" else launch_finetune
        jobs, labels = fan(build_config(stage, files, overrides), launch, slurm)
    else:
        jobs, labels = launch_stage(stage_name, files, overrides, launch, slurm), [""]
    cluster = launch.cluster or default_cluster()
    should_wait = launch.wait if launch.wait is not None else cluster != "slurm"
    if jobs and should_wait:
        return wait(jobs, labels)
    return 0


def _status(args: list[str]) -> int:
    from pathlib import Path

    from jobs.status import latest_folder, render

    lines, folder = 10, None
    i = 0
    while i < len(args):
        if args[i] in ("--lines", "-n") and i + 1 < len(args):
            lines, i = int(args[i + 1]), i + 1
        elif args[i].startswith("--lines="):
            lines = int(args[i].split("=", 1)[1])
        else:
            folder = Path(args[i])
        i += 1
    folder = folder or latest_folder()
    if folder is None:
        print("no job folder given and none under runs/jobs", file=sys.stderr)
        return 2
    from jobs import record
    if not record.read(folder):
        print(f"error: {folder}: no {record.RECORD} (not a job folder written by {PROG})",
              file=sys.stderr)
        return 2
    print(render(folder, lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    command, rest = argv[0], argv[1:]
    try:
        if command == "status":
            return _status(rest)
        if command in ("shard", "train", "finetune") or command in ALIASES:
            return _launch(command, command, rest)
        if command == "run":
            if not rest or rest[0].startswith("-"):
                print(_help("run", None) if rest else USAGE)
                return 0 if rest else 2
            return _launch("run", rest[0], rest[1:])
        print(f"error: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except InputError as err:  # e.g. the shard stage cannot read the corpus to plan slices
        print(f"error: {err}", file=sys.stderr)
        return 1
