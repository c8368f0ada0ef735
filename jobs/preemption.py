"""Pre-emption and time limits for multi-rank training: save at a step boundary, then requeue.

submitit's own handler for the pre-emption signal (USR2 by default;
``submitit/core/job_environment.py: SignalHandler.checkpoint_and_try_requeue``) runs
``checkpoint()`` inside the signal handler and requeues at once, on rank 0 only. A
DeepSpeed checkpoint needs every rank inside collectives, which cannot happen in a signal
handler. So every task replaces that handler with one that only sets a flag; the engine
reads it through ``stop_requested`` (all-reduced each step), saves on all ranks at the next
step boundary and returns ``"interrupted"``; then rank 0 calls submitit's handler as a plain
function: it calls our ``checkpoint()`` (the same callable with ``resume=auto``), dumps
it over the job's pickle, runs ``scontrol requeue`` and exits. The other ranks write no
result (a stale one would be read by the submitter as final): they wait until rank 0 has
replaced the pickle, then exit with status 0, so neither ``KillOnBadExit`` nor a short
``WaitTime`` in slurm.conf can kill rank 0 before it has requeued the job.

SLURM signals every process of a job step, loader workers included, and a pre-emption
starts with SIGTERM. torch's DataLoader workers die on SIGTERM (torch installs a handler
that re-raises it), which would fail the step before anything is saved. SIGTERM only
announces the pre-emption signal (submitit's own handler ignores it), so the task blocks
it before any worker exists; blocked signals stay blocked in forked workers whatever
handler they install.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from submitit import JobEnvironment

from pipeline.compat import preempt_signal, submitit_requeue

log = logging.getLogger(__name__)


class StopOnSignal:
    """Installs the flag handler for the pre-emption signal; keeps submitit's for later."""

    def __init__(self) -> None:
        self.signum = preempt_signal()  # honours SUBMITIT_PREEMPT_SIGNAL
        if self.signum != signal.SIGTERM:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        self.received = False
        self.requeue = submitit_requeue(signal.getsignal(self.signum))
        signal.signal(self.signum, self._on_signal)
        self._pickle = self._submitted_pickle()
        self._pickle_stamp = self._stamp()

    def _submitted_pickle(self) -> Path | None:
        """The pickle rank 0 replaces (with our ``checkpoint()``) right before requeueing."""
        if self.requeue is None:  # debug executor: no job folder, no requeue
            return None
        return Path(JobEnvironment().paths.submitted_pickle)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._pickle) if self._pickle else None
        except OSError:
            return None
        return None if st is None else (st.st_ino, st.st_mtime_ns)

    def _on_signal(self, signum: int, frame: Any = None) -> None:
        # nothing but a flag: no I/O, no collectives inside a signal handler
        self.received = True

    def requested(self) -> bool:
        """The engine's ``stop_requested``: true once this task got the signal."""
        return self.received

    def hand_over(self, rank: int, wait_s: float = 60.0) -> None:
        """After the engine saved and returned "interrupted": requeue (rank 0) and exit.

        Rank 0 goes through submitit's requeue path, which exits the process (or raises
        ``UncompletedJobError`` when the job timed out too often, which submitit records as
        the job's error). Without a submitit handler (debug executor) nothing is requeued
        and the caller returns the "interrupted" result.
        """
        if self.requeue is None:
            log.warning("stop requested but no submitit signal handler: not requeued")
            return
        if rank == 0:
            log.info("checkpoint saved on all ranks; handing over to submitit to requeue")
            self.requeue(self.signum)
            return  # not reached: submitit exits or raises
        log.info("rank %d: checkpoint saved; rank 0 requeues the job", rank)
        deadline = time.monotonic() + wait_s
        while self._stamp() == self._pickle_stamp and time.monotonic() < deadline:
            time.sleep(0.2)
        sys.exit(0)
