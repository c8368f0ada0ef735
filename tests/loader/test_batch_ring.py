"""Batches in a ring of shared blocks reused across batches (batch_ring.py), with real
worker processes: a slot is refilled only once the training process dropped every
tensor of the batch it held, a consumer that keeps its batches gets fresh blocks, and the
batches are the same either way."""
import pytest
import torch

from pipeline.config import load_config
from pipeline.loader.loader import ClipLoader, LoaderConfig

SETTING = ["batch_size=2", "epoch_batches=10", "prefetch=1", "clip.frames=4", "video.size=32",
           "shuffle_buffer=4", "seed=3"]


def loader(shards, context: str) -> ClipLoader:
    return ClipLoader(load_config(LoaderConfig, [], [f"shards={shards}", "workers=2", f"mp_context={context}",
                                                     *SETTING]))


def plain(batch: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_reused_slots_never_overwrite_a_batch_still_held(synth_shards, context):
    # consumed one at a time, each batch dropped before the next: the slots are reused
    passing, places = [], set()
    for batch in loader(synth_shards, context):
        places.add(batch["video"].data_ptr())
        passing.append(plain(batch))
        del batch
    assert len(places) <= 2 * 3 < len(passing)  # 2 workers x (prefetch 1 + 2) slots
    # every batch kept: no two share memory (busy slots are not refilled, fresh blocks
    # come instead), and they are the same batches
    held = list(loader(synth_shards, context))
    assert len({b["video"].data_ptr() for b in held}) == len(held) == len(passing) == 10
    for a, b in zip(passing, held):
        assert a["key"] == b["key"]
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["wave"], b["wave"])
