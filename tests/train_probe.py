"""Run the training engine in this process (one rank of a torchrun job, or alone).

``python train_probe.py OUT_JSON STOP_AFTER CONFIG.yaml [key=value ...]``: trains, stopping
after STOP_AFTER optimizer steps when it is > 0 (as a pre-emption would), then writes
the status and a fingerprint of this rank's parameters to OUT_JSON.rank<R>.
"""
import json
import os
import sys

import torch

from pipeline.config import load_config
from pipeline.train.config import TrainConfig
from pipeline.train.engine import train


def main():
    out_json, stop_after = sys.argv[1], int(sys.argv[2])
    files = [a for a in sys.argv[3:] if a.endswith(".yaml")]
    overrides = [a for a in sys.argv[3:] if not a.endswith(".yaml")]
    cfg = load_config(TrainConfig, files, overrides)
    calls = {"n": 0}

    def stop_requested() -> bool:
        calls["n"] += 1
        return 0 < stop_after <= calls["n"]

    result = train(cfg, stop_requested=stop_requested)
    rank = int(os.environ.get("RANK", 0))
    with open(f"{out_json}.rank{rank}", "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
