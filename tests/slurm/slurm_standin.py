"""Job targets for the launcher tests: a stage that fails, and the real training engine
with a hold, so a test can pre-empt it "in the middle of training" without timing races.

``held_train`` is ``pipeline.train.engine.train`` itself; only its ``stop_requested`` hook
is wrapped: a fresh run (no complete checkpoint yet) parks at optimizer step ``HOLD_AT``
until the real pre-emption signal has reached this task, then lets the engine see it. A
requeued run resumes from the checkpoint and is not held.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.config import MISSING

HOLD_AT = 3


@dataclass
class StandinConfig:
    out: str = field(default=MISSING, metadata={"help": "where the (failing) stage would write"})


def fail(cfg: StandinConfig) -> dict:
    """A stage that fails inside the job, as bad input would."""
    raise ValueError(f"{cfg.out}: corrupt input (raised inside the job on purpose)")


def held_train(cfg, stop_requested: Callable[[], bool] | None = None) -> dict:
    from pipeline.train import checkpoint
    from pipeline.train.engine import train

    fresh = not checkpoint.complete_tags(Path(cfg.out) / "checkpoints")
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1  # the engine asks once per optimizer step, on every rank
        if fresh and calls["n"] == HOLD_AT:
            rank = os.environ.get("RANK", "0")
            (Path(cfg.out) / f"held_rank{rank}").write_text(str(os.getpid()))
            deadline = time.monotonic() + 300
            while not stop_requested():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"held at step {HOLD_AT} for 300 s without a stop request")
                time.sleep(0.05)
            return True
        return bool(stop_requested and stop_requested())

    return train(cfg, stop_requested=stop)
