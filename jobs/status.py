"""``python -m jobs status [FOLDER]``: a run's jobs, their states and the tail of their logs.

Works from the job folder alone (``jobs.json`` + submitit's files), so it answers after
the submitting process has gone: the result pickle says done/failed; otherwise SLURM's
accounting (``sacct``) or, for local jobs, whether the controller process still lives.
Result pickles can run code when loaded: a job folder is a trusted input, and one that is
not the user's own, or that others can write to, is refused before anything is read.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections import deque
from pathlib import Path

from jobs import record
from pipeline.compat import job_paths, load_job_result
from pipeline.io.trust import require_own

DEFAULT_ROOT = Path("runs") / "jobs"


def latest_folder(root: Path = DEFAULT_ROOT) -> Path | None:
    folders = [p.parent for p in root.glob(f"*/{record.RECORD}")]
    return max(folders, key=lambda p: p.stat().st_mtime) if folders else None


def error_summary(text: str) -> str:
    """The last line of a Python traceback (``ValueError: ...``) out of submitit's message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    trace = [ln for ln in lines if not ln.startswith(("-----", "- /", "You can check", "or at paths"))]
    return trace[-1] if trace else text.strip()


def summary(value, limit: int = 200) -> str:
    """A one-line result: a dict's short values (long lists and texts left out)."""
    if isinstance(value, dict):
        parts = [f"{k}={v!r}" for k, v in value.items()
                 if not isinstance(v, (list, tuple, dict)) and len(repr(v)) <= 80]
        text = ", ".join(parts)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def paths(folder: Path, job_id: str, task: int = 0):
    """submitit's file names of one task (a private layout: through pipeline.compat)."""
    return job_paths(folder, job_id, task)


def _sacct_state(job_id: str) -> str:
    try:
        out = subprocess.run(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "UNKNOWN (sacct unavailable)"
    for line in out.splitlines():
        jid, _, state = line.partition("|")
        if jid == job_id or jid.startswith(job_id.split("_")[0] + "_["):
            return state.split()[0] if state else "UNKNOWN"
    return "UNKNOWN (not in sacct yet)"


def job_state(folder: Path, job_id: str, cluster: str) -> tuple[str, str]:
    """(state, detail): from rank 0's result pickle if written, else from the cluster."""
    if not re.fullmatch(r"\w[\w.-]*", job_id):  # ids name files inside the folder, no more
        return "UNREADABLE", f"job id {job_id!r} is not a job id"
    result = paths(folder, job_id).result_pickle
    if result.exists():
        require_own([result.parent, result], "a job result")
        try:
            outcome, value = load_job_result(result)
        except Exception as err:  # a half-written or foreign pickle
            return "UNREADABLE", f"{result}: {err}"
        if outcome == "success":
            return "DONE", summary(value)
        return "FAILED", error_summary(str(value))
    if cluster == "slurm":
        return _sacct_state(job_id), ""
    if cluster == "local":
        try:
            os.kill(int(job_id), 0)
            return "RUNNING", ""
        except (ProcessLookupError, ValueError):
            return "ENDED", "no result written (killed?)"
        except PermissionError:
            return "RUNNING", ""
    return "UNKNOWN", ""


def tail(path: Path, n: int) -> list[str]:
    if not path.exists():
        return []
    with open(path, errors="replace") as fh:
        # tqdm redraws with \r: keep the last state of each line
        return [ln.rstrip("\n").split("\r")[-1] for ln in deque(fh, maxlen=n)]


def render(folder: Path, lines: int = 10) -> str:
    """The status report for one job folder (InputError if it is not the user's own)."""
    folder = Path(folder)
    require_own([folder], "job results")
    launches = record.read(folder)
    if not launches:
        return f"{folder}: no {record.RECORD} (not a job folder written by python -m jobs)"
    out = [f"job folder {folder}"]
    for launch in launches:
        out.append(f"launch of '{launch['stage']}' on {launch['cluster']} at {launch['submitted']}:")
        for job in launch["jobs"]:
            state, detail = job_state(folder, job["job_id"], launch["cluster"])
            label = f" [{job['label']}]" if job.get("label") else ""
            out.append(f"  {job['job_id']}{label}: {state}{'  ' + detail if detail else ''}")
            if lines <= 0:
                continue
            p = paths(folder, job["job_id"])
            for name, path in (("stdout", p.stdout), ("stderr", p.stderr)):
                text = tail(path, lines)
                if text:
                    out.append(f"    -- {name} ({path}) --")
                    out.extend("    " + t for t in text)
    return "\n".join(out)
