"""The package as a user installs it: build the wheel, install it into a fresh venv outside
the repository and run the stages from another folder, by packaged recipe name.

No network and no second torch: the fresh venv sees, through a ``.pth`` line, a folder of
links to exactly the distributions the wheel requires (and theirs, recursively) as this
interpreter has them installed (the pins). So pip resolves every declared requirement
offline, a range that excludes the pin fails the install, and an import of anything
undeclared fails the run. Every compiler on PATH is a tripwire, so the run also shows
that nothing compiles C. ``test_every_import_is_declared`` checks the imports the run
does not reach.
"""
import ast
import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "ld", "as")
SOURCES = ("pipeline", "jobs", "configs", "setup.cfg", "pyproject.toml", "README.md")


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """From a copy of the sources, so no build/ or .egg-info lands in the checkout."""
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", tmp_path / "dist", src], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("avssl_pipeline-*.whl")
    return wheel


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(zf.read(meta).decode()).get_all("Requires-Dist") or []


def _dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions the requirements need, recursively, with the extras each
    requirement asks for (torch 2.15 reaches its CUDA libraries through
    ``cuda-toolkit[cublas,...]``: without following extras the closure misses them)."""
    todo, found, seen = list(requirements), {}, set()
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        new = {e for e in {""} | {canonicalize_name(x) for x in req.extras} if (name, e) not in seen}
        if not new:
            continue
        seen |= {(name, e) for e in new}
        found.setdefault(name, metadata.distribution(req.name))
        for line in found[name].requires or []:
            sub = Requirement(line)
            if sub.marker is None and "" in new or \
                    sub.marker is not None and any(sub.marker.evaluate({"extra": e}) for e in new):
                sub.marker = None  # decided here, for this extra
                todo.append(str(sub))
    return found


def _link_site(dists: dict[str, metadata.Distribution], folder: Path) -> None:
    """Links to the top-level files of each distribution (packages, modules, .libs, dist-info)."""
    folder.mkdir()
    for dist in dists.values():
        for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
            target = Path(dist.locate_file(top))
            if target.exists() and not (folder / top).exists():
                (folder / top).symlink_to(target)


def _tripwire_path(tmp_path: Path) -> tuple[str, Path]:
    """A PATH with ffmpeg/ffprobe and every compiler replaced by a script that logs its call."""
    bin_dir, log = tmp_path / "bin", tmp_path / "compiler_calls.log"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name in COMPILERS:
        (bin_dir / name).write_text(f"#!/bin/sh\necho \"$0 $*\" >> {log}\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    return str(bin_dir), log


def test_wheel_installs_and_runs_outside_the_repo(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    # the repository's top-level configs/ ships as package pipeline.configs, every recipe
    packaged = {n[len("pipeline/"):] for n in names if n.startswith("pipeline/configs/") and n.endswith(".yaml")}
    in_repo = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")}
    assert packaged == in_repo and "configs/gdt_tiny.yaml" in packaged
    assert "configs/slurm/train.yaml" in packaged and not any(n.startswith(("tests/", "configs/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, os.environ)
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path, os.environ).strip())
    deps = _dependency_closure(_requires(wheel))
    assert {"torch", "numba", "braceexpand", "deepspeed", "submitit"} <= set(deps)
    _link_site(deps, tmp_path / "pinned")
    (site / "pinned.pth").write_text(f"{tmp_path / 'pinned'}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CC", "CXX")}
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-index", "-q", wheel],
         tmp_path, env)  # resolves every declared requirement against the pinned packages

    work = tmp_path / "elsewhere"
    work.mkdir()
    path, log = _tripwire_path(tmp_path)
    env.update(PATH=path, TQDM_DISABLE="1")
    where = _run([py, "-c", "import pipeline, jobs; print(pipeline.__file__); print(jobs.__file__)"], work, env)
    assert all(Path(p).is_relative_to(site) for p in where.split()), where
    assert "synth" in _run([py, "-m", "pipeline", "--help"], work, env)
    _run([py, "-m", "pipeline", "synth", "out=corpus", "n_videos=4", "n_classes=2", "seconds=2",
          "size=64", "workers=1", "--quiet"], work, env)
    _run([py, "-m", "pipeline", "shard", "input=corpus", "output=shards", "short_side=64",
          "videos_per_shard=2", "workers=1", "--quiet"], work, env)
    _run([py, "-m", "pipeline", "train", "gdt_tiny", "out=run", "loader.shards=shards/train", "steps=3",
          "loader.batch_size=4", "loader.workers=0", "loader.epoch_batches=2", "log_every=1",
          "ckpt.every=3", "tensorboard=false", "--quiet"], work, env)
    assert (work / "run" / "final" / "method.safetensors").is_file()
    dry = _run([py, "-m", "jobs", "train", "gdt_tiny", "out=run2", "--dry-run", "cluster=slurm"], work, env)
    assert "#SBATCH" in dry and "method: gdt" in dry and not (work / "run2").exists()
    assert not log.exists(), f"a compiler was called: {log.read_text()}"


def _setup_cfg_requirements() -> dict[str, list[str]]:
    """{"install_requires": [...], extra: [...]} as distribution names."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    groups = {"install_requires": cfg["options"]["install_requires"]}
    groups.update(cfg["options.extras_require"])
    return {g: [canonicalize_name(Requirement(line).name) for line in text.splitlines() if line.strip()]
            for g, text in groups.items()}


def test_the_package_list_names_every_package():
    """setup.cfg lists its packages by name (``configs/`` is mapped in as pipeline.configs,
    which ``find:`` cannot do): a new wing missing from the list would be left out of the
    wheel, so the list must equal the folders that hold an ``__init__.py``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("pipeline", "jobs")
             for p in (ROOT / top).rglob("__init__.py")} | {"pipeline.configs"}
    assert listed == found
    assert cfg["options"]["package_dir"].split() == ["pipeline.configs", "=", "configs"]


def test_every_import_is_declared():
    """Every third-party module the package imports belongs to a declared distribution:
    at module level to install_requires; inside a function (an optional feature such as
    the POT peer of ``bench sinkhorn``) at least to an extra."""
    declared = _setup_cfg_requirements()
    required, optional = set(declared["install_requires"]), set().union(*declared.values())
    owners = metadata.packages_distributions()
    missing = []
    for root in ("pipeline", "jobs"):
        for path in sorted((ROOT / root).rglob("*.py")):
            tree = ast.parse(path.read_text())
            top_level = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("pipeline", "jobs"):
                        continue
                    dists = {canonicalize_name(d) for d in owners.get(top, [top])}
                    allowed = required if id(node) in top_level else optional
                    if not dists & allowed:
                        missing.append(f"{path.relative_to(ROOT)}: {module} ({', '.join(sorted(dists))})")
    assert not missing, "imported but not declared in setup.cfg:\n" + "\n".join(missing)
