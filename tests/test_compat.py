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
OUTSIDE = {"deepspeed": "0.20.0", "submitit": "1.6.0", "torch": "2.16.0"}


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
        if guard.bounded:  # an unbounded guard falls back outside its range instead
            assert f"<{guard.high}" in {str(s) for s in spec}, (name, str(spec))
        assert guard.holds() and compat.installed(guard.package) in spec, name
        assert not guard.holds(OUTSIDE[guard.package])
        assert guard.holds(guard.low) and not guard.holds(guard.high)  # [low, high)


def test_upper_bounds_only_where_a_guard_needs_one():
    """An upper bound in setup.cfg stands for a private-API touch in compat.py; one left
    behind after the touch is gone would keep users off newer releases for nothing."""
    guarded = {g.package for g in GUARDS.values() if g.bounded}
    bounded = {name for name, req in install_requires().items()
               if any(s.operator in ("<", "<=", "==", "~=", "===") for s in req.specifier)}
    assert bounded == guarded


def test_installing_the_package_never_replaces_a_newer_torch():
    """`pip install .` into an environment with its own (newer, CUDA) torch keeps it: the
    torch family is required from below only, so the installed build always satisfies."""
    reqs = install_requires()
    for name in ("torch", "torchvision", "torchaudio", "torchcodec"):
        assert {s.operator for s in reqs[name].specifier} == {">="}, (name, str(reqs[name].specifier))
        assert reqs[name].specifier.contains("99.0"), name


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


def test_job_files_inside_range_clear_error_outside(tmp_path):
    """The job folder layout `python -m jobs status` reads: the names submitit gives a
    task's files and its result pickle as submitit writes it; outside the range one error."""
    from submitit.core.utils import cloudpickle_dump

    p = compat.job_paths(tmp_path, "4242", task=1)
    assert p.result_pickle == tmp_path / "4242" / "4242_1_result.pkl"
    assert (p.stdout.name, p.stderr.name) == ("4242_1_log.out", "4242_1_log.err")
    p.result_pickle.parent.mkdir()
    cloudpickle_dump(("success", {"step": 3}), p.result_pickle)
    assert compat.load_job_result(p.result_pickle) == ("success", {"step": 3})
    for call in (lambda: compat.job_paths(tmp_path, "1", version=OUTSIDE["submitit"]),
                 lambda: compat.load_job_result(p.result_pickle, version=OUTSIDE["submitit"])):
        with pytest.raises(CompatError, match="JobPaths and pickle_load.*1.6.0"):
            call()


def _write_sevens(block) -> None:
    block.numpy()[:] = 7  # numpy in the forked child: no torch thread pool to inherit


def test_shared_bytes_inside_range_and_public_copy_outside(caplog):
    """Both paths give n bytes of shared memory that a forked child writes into and the
    parent sees; outside the tested torch range the public path runs and says so."""
    import multiprocessing

    for version in (None, OUTSIDE["torch"]):
        block = compat.shared_bytes(1 << 20, version=version)
        assert block.is_shared() and block.numel() == 1 << 20 and block.dtype.itemsize == 1
        child = multiprocessing.get_context("fork").Process(target=_write_sevens, args=(block,))
        child.start()
        child.join()
        assert child.exitcode == 0 and int(block[12345]) == 7
    assert "torch.UntypedStorage._new_shared" in caplog.text and "2.16.0" in caplog.text


# Names that belong to a dependency's internals: torchvision's ResNet constructors' state
# (what models/video.py and models/audio.py once set by hand), numba's code-generation
# helpers and array data model. The backbones now use torchvision's public BasicBlock and
# conv builders; the Sinkhorn intrinsic uses only numba.extending.intrinsic and llvmlite.ir.
PRIVATE_NAMES = {"_make_layer", "_norm_layer", "inplanes", "base_width", "cgutils", "make_array"}
# submitit's and DeepSpeed's public names are the ones their packages export at the top
# (submitit.JobEnvironment, submitit.helpers, deepspeed.initialize); their inner modules
# are internals.
PRIVATE_MODULES = ("numba.core", "numba.np", "numba.cpython", "torch._", "torchvision.models._",
                   "submitit.core", "submitit.slurm", "submitit.local", "submitit.auto",
                   "deepspeed.runtime", "deepspeed.ops", "deepspeed.utils", "deepspeed.comm")


DEPENDENCIES = {"torch", "torchvision", "torchaudio", "torchcodec", "av", "decord", "numpy", "np", "numba",
                "deepspeed", "submitit", "webdataset", "wds", "omegaconf", "OmegaConf", "safetensors"}


def _private_attribute_of_a_dependency(node) -> bool:
    """``torch.UntypedStorage._new_shared``: a ``_name`` (not a dunder) reached from a
    dependency's module name."""
    import ast

    if not (node.attr.startswith("_") and not node.attr.startswith("__")):
        return False
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in DEPENDENCIES


def _touches(path: Path) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        else:
            mods = []
        for mod in mods:
            if mod.split(".")[0] in ("pipeline", "jobs", "__future__"):
                continue
            if mod.startswith(PRIVATE_MODULES) or any(p.startswith("_") for p in mod.split(".")):
                found.append(f"{path.name}:{node.lineno} imports {mod}")
        if isinstance(node, ast.Attribute) and _private_attribute_of_a_dependency(node):
            found.append(f"{path.name}:{node.lineno} uses {ast.unparse(node)}")
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
        if isinstance(node, ast.Name) and node.id in PRIVATE_NAMES:
            found.append(f"{path.name}:{node.lineno} uses {node.id}")
    return found


def test_no_private_api_outside_compat():
    """Private modules and the known internal names appear only in pipeline/compat.py."""
    files = [p for d in ("pipeline", "jobs") for p in sorted((ROOT / d).rglob("*.py"))
             if p != ROOT / "pipeline" / "compat.py"]
    assert len(files) > 50
    assert [t for p in files for t in _touches(p)] == []
    # the scan sees what it is meant to see
    assert len(_touches(ROOT / "pipeline" / "compat.py")) >= 1


def test_scan_catches_the_old_private_touches(tmp_path):
    old = tmp_path / "old.py"
    old.write_text("from numba.core import cgutils\nfrom submitit.slurm.slurm import _make_sbatch_string\n"
                   "from submitit.core.utils import JobPaths\nimport deepspeed.runtime.engine\n"
                   "def f(self):\n    self.inplanes = 64\n    return self._make_layer(1)\n"
                   "block = torch.UntypedStorage._new_shared(8)\n")
    assert len(_touches(old)) == 10
