"""``eval.json``, the evaluation stage's headline numbers: its one writer (``write_eval``)
and its one reader (``read_eval``).

The report and the demo's top-level copy read it back; a run folder without one (the
evaluation not run yet) is legitimate for the report, which asks ``has_eval`` first.
Missing, one behaviour: ``read_eval`` raises ``InputError`` naming the path.
"""
from __future__ import annotations

from pathlib import Path
from typing import IO, Callable, Sequence

from pipeline.io.atomic import commit_together, json_writer
from pipeline.io.json_object import read_json_object

EVAL = "eval.json"
Writer = Callable[[IO[bytes]], None]


def eval_path(folder: str | Path) -> Path:
    """The headline numbers of an evaluation output folder."""
    return Path(folder) / EVAL


def has_eval(folder: str | Path) -> bool:
    return eval_path(folder).is_file()


def write_eval(folder: str | Path, result: dict, along: Sequence[tuple[Path, Writer]] = ()) -> Path:
    """Write the numbers atomically (a failed rewrite leaves the previous file whole),
    committed in one step with the files ``along`` them (e.g. the config that made them:
    ``pipeline.io.atomic.commit_together``), ``eval.json`` renamed last."""
    path = eval_path(folder)
    commit_together([*along, (path, json_writer(result, indent=2))])
    return path


def read_eval(folder: str | Path) -> dict:
    """The numbers of ``folder``; ``InputError`` naming the path when missing or not an
    object of numbers by metric name."""
    return read_json_object(eval_path(folder), "an evaluation result (numbers by metric name)",
                            f"no {EVAL} (run `python -m pipeline eval` first)", "run the evaluation again")
