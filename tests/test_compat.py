"""Each private-API touch in pipeline/compat.py: it works with the installed (pinned)
version, and outside its tested range it falls back or fails with one clear message."""
import configparser
import logging
import signal
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipeline import compat
from pipeline.compat import GUARDS, CompatError

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = {"deepspeed": "0.20.0", "submitit": "1.6.0"}


def install_requires() -> dict[str, Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    reqs = [Requirement(line) for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    return {r.name.lower(): r for r in reqs}


def test_guards_match_setup_cfg_and_hold_for_the_pins():
    """setup.cfg promises what compat.py was tested with, and the installed pins are inside."""
    reqs = install_requires()
    for name, guard in GUARDS.items():
        spec = reqs[guard.package].specifier
        assert f"<{guard.high}" in {str(s) for s in spec}, (name, str(spec))
        assert guard.holds() and compat.installed(guard.package) in spec, name
        assert not guard.holds(OUTSIDE[guard.package])
        assert guard.holds(guard.low) and not guard.holds(guard.high)  # [low, high)


def test_upper_bounds_only_where_a_guard_needs_one():
    """An upper bound in setup.cfg stands for a private-API touch in compat.py; one left
    behind after the touch is gone would keep users off newer releases for nothing."""
    guarded = {g.package for g in GUARDS.values()}
    bounded = {name for name, req in install_requires().items() if any(s.operator == "<" for s in req.specifier)}
    assert bounded == guarded


def test_deepspeed_shm_comm_skipped_inside_range_untouched_outside(caplog):
    import deepspeed.ops

    assert compat.skip_deepspeed_shm_comm() is True
    assert vars(deepspeed.ops)["__compatible_ops__"]["deepspeed_shm_comm"] is False
    with caplog.at_level(logging.WARNING, logger="pipeline.compat"):
        assert compat.skip_deepspeed_shm_comm(version=OUTSIDE["deepspeed"]) is False
    assert "deepspeed.ops.__compatible_ops__" in caplog.text and "0.20.0" in caplog.text


def test_sbatch_script_inside_range_clear_error_outside(tmp_path):
    script = compat.sbatch_script(str(tmp_path / "%j"), {"job_name": "x", "time": 5, "nodes": 2},
                                  "/opt/py/bin/python")
    assert script.startswith("#!/bin/bash") and "#SBATCH --nodes=2" in script
    assert "/opt/py/bin/python -u -m submitit.core._submit" in script
    with pytest.raises(CompatError) as err:
        compat.sbatch_script(str(tmp_path), {}, "python", version=OUTSIDE["submitit"])
    msg = str(err.value)
    assert "_make_sbatch_string" in msg and "1.6.0" in msg and "submitit>=1.5,<1.6" in msg


def test_preempt_signal_inside_range_and_env_fallback_outside(monkeypatch):
    assert compat.preempt_signal() == signal.SIGUSR2  # submitit's default
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")
    assert compat.preempt_signal(version=OUTSIDE["submitit"]) == signal.SIGUSR1
    monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "NOPE")
    with pytest.raises(CompatError, match="SIGNOPE"):
        compat.preempt_signal(version=OUTSIDE["submitit"])


def test_submitit_requeue_inside_range_clear_error_outside():
    from submitit.core.job_environment import SignalHandler

    assert compat.submitit_requeue(signal.SIG_DFL) is None  # debug executor: nothing installed
    handler = SignalHandler.__new__(SignalHandler)  # what submitit installs, unused here
    requeue = compat.submitit_requeue(handler.checkpoint_and_try_requeue)
    assert callable(requeue)
    with pytest.raises(CompatError, match="checkpoint_and_try_requeue.*1.6.0"):
        compat.submitit_requeue(signal.SIG_DFL, version=OUTSIDE["submitit"])
