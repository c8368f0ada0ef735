"""The one way evaluation code consumes loader batches: get batch -> move to the device ->
(device-side augmentation) -> use. Every evaluation loop goes through here, so a change
of the batch contract is made once."""
from __future__ import annotations

from typing import Iterable, Iterator

import torch


def eval_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_batches(loader: Iterable[dict], device: torch.device) -> Iterator[dict]:
    """The loader's batches with their tensors on ``device``."""
    for batch in loader:
        yield {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
               for k, v in batch.items()}
