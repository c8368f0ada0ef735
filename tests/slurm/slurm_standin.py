"""A small training function with the engine's contract, for testing the launcher alone.

``train(cfg, stop_requested) -> {"status", "step", "checkpoint", ...}``: a real
torch.distributed (gloo) job over the environment the launcher exports, SGD with
momentum on a linear model with per-step deterministic data, a stop request all-reduced
every step, checkpoints (rank 0: model + optimizer; every rank: its own file; then a
COMPLETE marker) and ``resume=auto``. ``hold_at`` parks a fresh run at that step until a
stop arrives, so a test can pre-empt "in the middle of training" without timing races.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from pipeline.config import MISSING


@dataclass
class StandinConfig:
    out: str = field(default=MISSING, metadata={"help": "run folder (checkpoints/)"})
    steps: int = field(default=12, metadata={"help": "optimizer steps"})
    ckpt_every: int = field(default=5, metadata={"help": "checkpoint period in steps"})
    hold_at: int = field(default=0, metadata={"help": "fresh runs wait at this step for a stop"})
    resume: str = field(default="none", metadata={"help": "none | auto"})
    seed: int = field(default=0, metadata={"help": "seed of the model and the data"})


def _any_rank(flag: bool) -> bool:
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _latest(root: Path) -> Path | None:
    done = sorted(p for p in root.glob("step_*") if (p / "COMPLETE").exists())
    return done[-1] if done else None


def _save(root: Path, step: int, model, opt, rank: int) -> Path:
    path = root / f"step_{step:06d}"
    path.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
                   path / "model.pt")
    torch.save({"step": step, "rng": torch.get_rng_state()}, path / f"rank_{rank}.pt")
    dist.barrier()
    if rank == 0:
        (path / "COMPLETE").write_text(str(step))
    dist.barrier()
    return path


def train(cfg: StandinConfig, stop_requested: Callable[[], bool] | None = None) -> dict:
    dist.init_process_group("gloo")  # env:// from the launcher (MASTER_ADDR, RANK, ...)
    rank, world = dist.get_rank(), dist.get_world_size()
    root = Path(cfg.out) / "checkpoints"
    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step, resumed_from = 0, None
    latest = _latest(root) if cfg.resume == "auto" else None
    if latest is not None:
        state = torch.load(latest / "model.pt", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = resumed_from = int(state["step"])
        torch.set_rng_state(torch.load(latest / f"rank_{rank}.pt", weights_only=True)["rng"])
    fresh, status, ckpt = latest is None, "done", None
    while step < cfg.steps:
        g = torch.Generator().manual_seed(cfg.seed * 1000 + step * world + rank)
        x = torch.randn(16, 8, generator=g)
        loss = ((model(x).squeeze(1) - x.sum(1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
        opt.step()
        step += 1
        if fresh and step == cfg.hold_at:
            (Path(cfg.out) / f"held_rank{rank}").write_text(str(os.getpid()))
            deadline = time.monotonic() + 300
            while not _any_rank(bool(stop_requested and stop_requested())):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"held at step {step} for 300 s without a stop request")
                time.sleep(0.05)
        stop = _any_rank(bool(stop_requested and stop_requested()))
        if stop or step % cfg.ckpt_every == 0 or step == cfg.steps:
            ckpt = _save(root, step, model, opt, rank)
        if stop:
            status = "interrupted"
            break
    params = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    dist.destroy_process_group()
    return {"status": status, "step": step, "checkpoint": str(ckpt), "resumed_from": resumed_from,
            "params": params, "master_addr": os.environ["MASTER_ADDR"]}


def fail(cfg: StandinConfig) -> dict:
    """A stage that fails inside the job, as bad input would."""
    raise ValueError(f"{cfg.out}: corrupt input (raised inside the job on purpose)")
