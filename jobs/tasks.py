"""The callables submitit pickles and runs in each task: a stage's ``run`` or training.

They hold only import strings (``module:attr``), so a pickle stays small and a requeued
job picks up the installed code rather than a pickled copy of it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
from typing import Any

import submitit
from omegaconf import OmegaConf

from jobs.preemption import StopOnSignal
from pipeline.config import ConfigError, flat_fields
from pipeline.registry import resolve

ENGINE = "pipeline.train.engine:train"
log = logging.getLogger(__name__)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class StageTask:
    """Runs one stage's ``run(cfg)`` in a job (or an array task)."""

    def __init__(self, target: str):
        self.target = target

    def __call__(self, cfg: Any) -> Any:
        _setup_logging()
        return resolve(self.target)(cfg)

    def __repr__(self) -> str:
        return f"StageTask({self.target})"


def resume_keys(cfg: Any) -> list[str]:
    """Dotted keys named ``resume`` in a config (``resume`` or ``ckpt.resume``)."""
    return [k for k, *_ in flat_fields(type(cfg)) if k.split(".")[-1] == "resume"]


def with_resume_auto(cfg: Any) -> Any:
    """A copy of ``cfg`` that resumes from the newest complete checkpoint."""
    keys = resume_keys(cfg)
    if len(keys) != 1:
        raise ConfigError(f"{type(cfg).__name__}: needs exactly one 'resume' key to resume "
                          f"after a requeue, found {keys or 'none'}")
    node = OmegaConf.structured(cfg)
    OmegaConf.update(node, keys[0], "auto")
    return OmegaConf.to_object(node)


def node_address(name: str) -> str:
    """An address for SLURM node ``name``: the name itself when it resolves, else the
    node's ``NodeAddr`` from ``scontrol``. A node name need not be a host name (nodes
    called gpu-001 reached at 10.0.0.7; several slurmd on one host), and submitit takes
    the first node's name as MASTER_ADDR."""
    try:
        socket.getaddrinfo(name, None)
        return name
    except socket.gaierror:
        pass
    out = subprocess.run(["scontrol", "show", "node", name, "-o"], capture_output=True,
                         text=True, timeout=60).stdout
    addr = next((kv.split("=", 1)[1] for kv in out.split() if kv.startswith("NodeAddr=")), "")
    if not addr:
        raise RuntimeError(f"SLURM node {name!r}: not a resolvable host and scontrol gives no NodeAddr")
    return addr


class TrainTask(submitit.helpers.Checkpointable):
    """One rank of a training job: distributed env from submitit, stop flag on pre-emption.

    ``target(cfg, stop_requested)`` is the engine contract: it returns
    ``{"status": "done" | "interrupted", "step", "checkpoint", ...}``; on a stop request
    on any rank it saves on all ranks first. ``checkpoint()`` is what submitit pickles
    for the requeued job: the same task with ``resume=auto``.
    """

    def __init__(self, target: str = ENGINE):
        self.target = target

    def __call__(self, cfg: Any) -> dict:
        _setup_logging()
        env = submitit.helpers.TorchDistributedEnvironment()
        env.master_addr = node_address(env.master_addr)
        # GPUs are left as SLURM gives them; the engine picks cuda:LOCAL_RANK
        env.export(set_cuda_visible_devices=False, overwrite=True)
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        log.info("rank %d/%d on %s (master %s:%d), restart %d", env.rank, env.world_size,
                 submitit.JobEnvironment().hostname, env.master_addr, env.master_port, restarts)
        stop = StopOnSignal()
        result = dict(resolve(self.target)(cfg, stop_requested=stop.requested))
        result.update(rank=env.rank, world_size=env.world_size, restarts=restarts,
                      node=os.environ.get("SLURMD_NODENAME", submitit.JobEnvironment().hostname))
        if result.get("status") == "interrupted":
            stop.hand_over(env.rank)
        return result

    def checkpoint(self, cfg: Any) -> submitit.helpers.DelayedSubmission:
        log.info("requeueing %s with resume=auto", self.target)
        return submitit.helpers.DelayedSubmission(TrainTask(self.target), with_resume_auto(cfg))

    def __repr__(self) -> str:
        return f"TrainTask({self.target})"


def replace_key(cfg: Any, key: str, value: Any) -> Any:
    """``cfg`` with one (possibly dotted) key set, type-checked by OmegaConf."""
    if "." not in key and dataclasses.is_dataclass(cfg):
        return dataclasses.replace(cfg, **{key: value})
    node = OmegaConf.structured(cfg)
    OmegaConf.update(node, key, value)
    return OmegaConf.to_object(node)
