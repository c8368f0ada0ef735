"""Run a loader in a fresh process: consume batches, print fingerprints and the state.

Used by the resume test: ``python loader_probe.py SHARDS N_BATCHES [STATE_IN] STATE_OUT``.
"""
import json
import sys

import torch

from pipeline.config import load_config
from pipeline.loader.loader import ClipLoader, LoaderConfig

OVERRIDES = ["batch_size=3", "workers=2", "epoch_batches=6", "shuffle_buffer=8",
             "clip.positions=2", "clip.frames=4", "video.size=32", "seed=5"]


def fingerprint(batch) -> list:
    return [batch["key"], round(float(batch["video"].double().sum()), 3),
            round(float(batch["audio"].double().sum()), 3)]


def main():
    shards, n = sys.argv[1], int(sys.argv[2])
    state_in = sys.argv[3] if len(sys.argv) > 4 else None
    state_out = sys.argv[-1]
    loader = ClipLoader(load_config(LoaderConfig, [], [f"shards={shards}", *OVERRIDES]))
    if state_in:
        loader.load_state_dict(json.load(open(state_in)))
    seen = []
    while len(seen) < n:
        for batch in loader:
            seen.append(fingerprint(batch))
            if len(seen) == n:
                break
    json.dump(loader.state_dict(), open(state_out, "w"))
    print(json.dumps(seen))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
