"""Run a loader in a fresh process: consume batches, print their fingerprints, save the
loader state after chosen batches (as a checkpoint stores it: ``torch.save``, read back
with ``torch.load(weights_only=True)``).

``python loader_probe.py SHARDS WORKERS N_BATCHES STATE_IN|- OUT_DIR [SAVE_AT,...]``
"""
import json
import sys
from pathlib import Path

import torch

from pipeline.config import load_config
from pipeline.loader.device_augment import DeviceAugment
from pipeline.loader.loader import ClipLoader, LoaderConfig

OVERRIDES = ["batch_size=3", "epoch_batches=6", "shuffle_buffer=8", "clip.positions=2",
             "clip.reverse=true", "clip.frames=4", "video.size=32", "seed=5"]


def fingerprint(batch: dict, augment: DeviceAugment) -> list:
    """The raw batch (uint8 video, int16 audio, drawn parameters) and what the device
    step makes of it."""
    out = augment(batch)
    return [batch["key"], int(batch["video"].long().sum()), int(batch["wave"].long().sum()),
            round(float(batch["jitter"].sum()), 4), int(batch["spec_masks"].sum()),
            round(float(out["video"].double().sum()), 2), round(float(out["audio"].double().sum()), 2)]


def main():
    shards, workers, n, state_in, out_dir = sys.argv[1:6]
    save_at = {int(x) for x in sys.argv[6].split(",")} if len(sys.argv) > 6 else set()
    cfg = load_config(LoaderConfig, [], [f"shards={shards}", f"workers={workers}", *OVERRIDES])
    loader = ClipLoader(cfg)
    augment = DeviceAugment.from_loader(cfg)
    if state_in != "-":
        loader.load_state_dict(torch.load(state_in, weights_only=True))
    seen = []
    while len(seen) < int(n):
        for batch in loader:
            seen.append(fingerprint(batch, augment))
            if len(seen) in save_at:
                torch.save(loader.state_dict(), Path(out_dir) / f"state{len(seen)}.pt")
            if len(seen) == int(n):
                break
    print(json.dumps(seen))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
