"""``shard`` as the command line runs it: the output folder owned per slice.

Slices of one corpus (``slice=i/n``, a SLURM array) write disjoint shards of one output
folder by design, so each takes the folder shared (``pipeline.io.folder_lock``) and its
own slice exclusively: slices run side by side, while a second run of the same slice
(or of the whole corpus twice, ``slice=0/1``) stops at once with one line naming the
holder. Any other stage that would write into the folder (it takes it whole) is refused
while a slice runs, and a shard run is refused while such a stage holds it. The locks
are ``flock``s: a killed slice leaves nothing stuck (its re-run takes over).

A separate module so the shard stage itself stays lock-free for callers that own their
folder already (tests, benchmarks); ``pipeline.stages`` points ``shard`` here.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from pipeline.io.folder_lock import hold
from pipeline.shard.driver import ShardConfig, parse_slice
from pipeline.shard.driver import run as run_unlocked


def run(cfg: ShardConfig) -> dict:
    part, parts = parse_slice(cfg.slice)  # a bad slice is a config error before any lock
    out = Path(cfg.output)
    name = ".merge.lock" if cfg.merge_only else f".slice-{part}-of-{parts}.lock"
    created = not out.exists()
    try:
        with hold(out, "shard", shared=True), hold(out, f"shard slice {part}/{parts}", name=name):
            return run_unlocked(cfg)
    finally:  # a run refused before writing anything leaves no folder either
        if created and out.is_dir() and not any(out.iterdir()):
            with contextlib.suppress(OSError):  # a slice beside it wrote into it meanwhile
                out.rmdir()
