"""Every use of a dependency's private API, each behind a check of the versions it was tested with.

Why one module: private names change without notice, so each touch is listed here with
the range of versions it is known to hold for (``GUARDS``, matching the upper bounds in
setup.cfg; CI runs the pins in constraints.txt). Outside that range a touch either falls
back to public behaviour (and says so once) or raises ``CompatError`` naming the package,
the installed version, the tested range and what to do, before any work depends on it.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from packaging.version import Version

log = logging.getLogger(__name__)


class CompatError(RuntimeError):
    """An installed dependency is outside the range a private-API touch was tested with."""


@dataclass(frozen=True)
class Guard:
    package: str  # distribution name, as pip knows it
    low: str  # tested range: low <= version < high
    high: str
    what: str  # the private API, for the message
    # False: outside the range the touch falls back to public behaviour, so setup.cfg needs
    # no upper bound (torch: `pip install .` must never replace a cluster's newer CUDA torch)
    bounded: bool = True

    def holds(self, version: str | None = None) -> bool:
        v = Version(version or installed(self.package))
        return Version(self.low) <= v < Version(self.high)

    def message(self, version: str | None = None) -> str:
        return (f"{self.what} is a private API of {self.package}, tested with "
                f"{self.package}>={self.low},<{self.high}; installed {version or installed(self.package)}. "
                f"Install a version in that range (pip install '{self.package}>={self.low},<{self.high}').")

    def require(self, version: str | None = None) -> None:
        if not self.holds(version):
            raise CompatError(self.message(version))


@lru_cache(maxsize=None)
def installed(package: str) -> str:
    return metadata.version(package)


@lru_cache(maxsize=None)
def _warn_once(text: str) -> None:
    log.warning(text)


GUARDS = {
    "deepspeed_ops": Guard("deepspeed", "0.15", "0.20", "deepspeed.ops.__compatible_ops__"),
    "sbatch_script": Guard("submitit", "1.5", "1.6",
                           "submitit.slurm.slurm._make_sbatch_string (and the submitit.core._submit entry point)"),
    "preempt_signal": Guard("submitit", "1.5", "1.6", "submitit JobEnvironment._usr_sig"),
    "signal_handler": Guard("submitit", "1.5", "1.6",
                            "submitit.core.job_environment.SignalHandler.checkpoint_and_try_requeue"),
    "shared_storage": Guard("torch", "2.4", "2.16", "torch.UntypedStorage._new_shared", bounded=False),
    "job_files": Guard("submitit", "1.5", "1.6",
                       "submitit.core.utils.JobPaths and pickle_load (a job folder's file names and result pickle)"),
}


def skip_deepspeed_shm_comm(version: str | None = None) -> bool:
    """Keep DeepSpeed from JIT-compiling its shared-memory collective (~90 s of C++ build
    per node, and compiler subprocesses for probing every op) when it sets up a CPU
    process group; this project's gloo collectives do not need it. Marking the op
    incompatible in the (lazily probed) table skips the probe too. Outside the tested
    range: nothing is touched, DeepSpeed may compile the op, and a warning says so.
    Returns whether the op was marked."""
    guard = GUARDS["deepspeed_ops"]
    if not guard.holds(version):
        _warn_once(f"{guard.message(version)} Not touched: DeepSpeed may compile its shm_comm op.")
        return False
    import deepspeed.ops

    table = vars(deepspeed.ops).setdefault("__compatible_ops__", {})
    table["deepspeed_shm_comm"] = False
    return True


def sbatch_script(folder: str, parameters: dict[str, Any], python: str, version: str | None = None) -> str:
    """The sbatch script submitit would write for ``parameters`` (for ``--dry-run``)."""
    GUARDS["sbatch_script"].require(version)
    import shlex

    from submitit.slurm.slurm import _make_sbatch_string

    command = " ".join([shlex.quote(python), "-u -m submitit.core._submit", shlex.quote(folder)])
    return _make_sbatch_string(command=command, folder=folder, **parameters)


def preempt_signal(version: str | None = None) -> int:
    """The signal submitit sends before pre-emption or the time limit (USR2 unless the
    SUBMITIT_PREEMPT_SIGNAL environment variable says otherwise). Outside the tested
    range, the same rule is read from the environment variable itself."""
    if GUARDS["preempt_signal"].holds(version):
        from submitit.core.job_environment import JobEnvironment

        return JobEnvironment._usr_sig()
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    if not hasattr(signal, name):
        raise CompatError(f"SUBMITIT_PREEMPT_SIGNAL: unknown signal {name}")
    return getattr(signal, name)


def submitit_requeue(installed_handler: Any, version: str | None = None) -> Callable[[int], None] | None:
    """submitit's requeue path, taken from the handler it installed for the pre-emption
    signal (a bound ``SignalHandler.checkpoint_and_try_requeue``), as a plain function of
    the signal number; None when submitit installed none (debug executor)."""
    GUARDS["signal_handler"].require(version)
    from submitit.core.job_environment import SignalHandler

    owner = getattr(installed_handler, "__self__", None)
    if not isinstance(owner, SignalHandler):
        return None
    return lambda signum: owner.checkpoint_and_try_requeue(signum, None)


def job_paths(folder: str | Path, job_id: str, task: int = 0, version: str | None = None) -> Any:
    """submitit's names for one task's files in a job folder (``stdout``, ``stderr``,
    ``result_pickle``), for ``python -m jobs status``, which reads a folder after the
    submitting process has gone. submitit exports no public name for this layout."""
    GUARDS["job_files"].require(version)
    from submitit.core.utils import JobPaths

    return JobPaths(Path(folder) / "%j", job_id=job_id, task_id=task)


def load_job_result(path: str | Path, version: str | None = None) -> Any:
    """A task's result pickle as submitit wrote it: ("success" | "error", value). The
    caller checks first that the folder is trusted (``pipeline.io.trust``): it unpickles."""
    GUARDS["job_files"].require(version)
    from submitit.core.utils import pickle_load

    return pickle_load(Path(path))


def shared_bytes(n: int, version: str | None = None):
    """A uint8 tensor of ``n`` bytes made in shared memory, as torch's own ``default_collate``
    makes a batch (``UntypedStorage._new_shared``): the public ``share_memory_()`` makes
    the block and then copies it there (40 ms for 36 MB here, against 0.2 ms), which the
    loader's batch ring pays once per epoch per block. Outside the tested torch range, or
    where the call does not give shared memory of that size, the public copy runs and a
    warning says so once (torch carries no upper bound in setup.cfg)."""
    import torch

    guard = GUARDS["shared_storage"]
    if guard.holds(version):
        try:
            block = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(n))
            if block.is_shared() and block.numel() == n:
                return block
        except (AttributeError, TypeError, RuntimeError):
            pass
        _warn_once(f"{guard.what} did not give {n} shared bytes with torch {installed('torch')}; "
                   "shared batch blocks are made with share_memory_() (a copy)")
    else:
        _warn_once(f"{guard.message(version)} Not touched: shared batch blocks are made with "
                   "share_memory_() (a copy)")
    return torch.empty(n, dtype=torch.uint8).share_memory_()
