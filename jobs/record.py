"""The job folder's ``jobs.json``: which jobs a launch submitted, so ``status`` can find
them (and their logs) after the submitting process is gone."""
from __future__ import annotations

import json
import time
from pathlib import Path
from pipeline.io.atomic import write_json

RECORD = "jobs.json"


def read(folder: Path) -> list[dict]:
    """Every launch recorded in ``folder``, oldest first."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return []
    try:
        return json.loads(path.read_text())["launches"]
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a jobs record ({err})") from None


def append(folder: Path, stage: str, cluster: str, jobs: list[dict]) -> dict:
    """Add one launch: ``jobs`` is ``[{"job_id", "label", "tasks"}]``."""
    launch = {"stage": stage, "cluster": cluster,
              "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"), "jobs": jobs}
    launches = read(folder) + [launch]
    write_json(Path(folder) / RECORD, {"launches": launches})
    return launch
