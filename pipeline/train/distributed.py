"""Process-group set-up that works the same under torchrun, the deepspeed launcher, srun
(via submitit's exported environment) and a plain ``python`` with world size 1."""
from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_distributed() -> DistInfo:
    """Initialise torch.distributed through DeepSpeed (gloo on CPU, nccl on GPU).

    Without a launcher, the environment of a single process is filled in so the same
    code path runs everywhere.
    """
    import deepspeed

    from pipeline.compat import skip_deepspeed_shm_comm

    skip_deepspeed_shm_comm()  # its shared-memory collective would be JIT-compiled (~90 s)
    init_method = None
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # alone (no launcher, or a launcher of one): a file rendezvous instead of a TCP
        # port that a neighbour might take first, and no MPI discovery
        fd, path = tempfile.mkstemp(prefix="pipeline-dist-")
        os.close(fd)
        os.unlink(path)
        init_method = f"file://{path}"
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        if init_method:
            deepspeed.init_distributed(dist_backend=backend, verbose=False, init_method=init_method,
                                       auto_mpi_discovery=False,
                                       rank=0, world_size=1)
        else:
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (a stop request, say)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm statistics) over ranks, so the model
    that is saved at the end is the same on every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(dist.get_world_size())
