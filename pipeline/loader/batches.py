"""The one way evaluation code consumes loader batches: get batch -> move to the device ->
(device-side augmentation) -> use. Every evaluation loop goes through here, so a change
of the batch contract is made once."""
from __future__ import annotations

from typing import Iterator

import torch

from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader


def eval_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_batches(loader: ClipLoader, device: torch.device) -> Iterator[dict]:
    """The loader's batches as the models take them, on ``device`` (``DeviceAugment``)."""
    augment = DeviceAugment.from_loader(loader.cfg).to(device)
    for batch in loader:
        yield augment(batch)
