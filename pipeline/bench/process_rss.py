"""Run a command in its own process and measure it: wall and CPU seconds, peak RSS.

``wait4``'s rusage gives the peak RSS of the largest process of the command's tree (the
stage itself, a loader worker or an ffmpeg); a sampler reading each process's own
high-water mark (``VmHWM`` in /proc) every ``interval`` seconds tells which program it
was (python vs ffmpeg), so a flat Python process is not hidden behind a big decoder.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _hwm(pid: int) -> tuple[str, float] | None:
    """(program name, peak RSS in MB) of a live process."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
        return fields["Name"].strip(), int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


class TreeSampler(threading.Thread):
    """Largest VmHWM seen per program name in the process tree under ``root``."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval, self.peaks = root, interval, {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            todo = [self.root]
            while todo:
                pid = todo.pop()
                todo.extend(_children(pid))
                got = _hwm(pid)
                if got:  # loader workers are called pt_data_worker
                    self.peaks[got[0]] = max(self.peaks.get(got[0], 0.0), got[1])
            self.done.wait(self.interval)


def measure(cmds: list[list[str]], log: Path) -> dict:
    """Run the commands one after another (output appended to ``log``); wall/CPU seconds
    summed, peak RSS the largest, also per program name."""
    wall = cpu = peak = 0.0
    by_name: dict[str, float] = {}
    load = os.getloadavg()[0]
    for cmd in cmds:
        t0 = time.perf_counter()
        with open(log, "ab") as fh:  # the children's console output as it comes: a log, not a result
            proc = subprocess.Popen(cmd, stdout=fh, stderr=fh)
            sampler = TreeSampler(proc.pid)
            sampler.start()
            _, status, ru = os.wait4(proc.pid, 0)
            sampler.done.set()
            sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall += time.perf_counter() - t0
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd[2:4])}: exit {proc.returncode}; log {log}:\n{tail}")
        cpu += ru.ru_utime + ru.ru_stime
        peak = max(peak, ru.ru_maxrss / 1024)  # KiB on Linux
        for name, mb in sampler.peaks.items():
            by_name[name] = max(by_name.get(name, 0.0), mb)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(peak, 1),
            "peak_rss_mb_by_program": {k: round(v, 1) for k, v in sorted(by_name.items())},
            "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)]}
