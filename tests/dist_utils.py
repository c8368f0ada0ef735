"""Run a function on N real processes joined in a gloo process group (for tests).

``run_distributed(fn, 2, *args)`` spawns fresh interpreters (torch.multiprocessing,
start method "spawn"), joins them over TCP on a free 127.0.0.1 port, calls
``fn(rank, world_size, *args)`` in each and returns the ranks' return values in rank
order (anything ``torch.save`` can store). An exception in a rank fails the call with
that rank's traceback. ``fn`` must be importable (a module-level function).
"""
from __future__ import annotations

import datetime
import os
import socket
import tempfile
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, fn: Callable, args: tuple, out_dir: str, threads: int) -> None:
    torch.set_num_threads(threads)  # several ranks share the CPU cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        result = fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))


def run_distributed(fn: Callable[..., Any], world_size: int = 2, *args: Any, threads: int = 1,
                    attempts: int = 2) -> list[Any]:
    """``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; their results in rank order.

    The port is chosen just before the ranks bind it; if another process takes it in
    between, the run is retried once with a new port.
    """
    for attempt in range(attempts):
        with tempfile.TemporaryDirectory() as out_dir:
            try:
                mp.spawn(_entry, args=(world_size, free_port(), fn, args, out_dir, threads),
                         nprocs=world_size, join=True)
            except mp.ProcessRaisedException as err:
                if "Address already in use" in str(err) and attempt + 1 < attempts:
                    continue
                raise
            return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=False)
                    for r in range(world_size)]
    raise RuntimeError("unreachable")
