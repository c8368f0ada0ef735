"""The layer order of the package is a contract: data flows one way, so a module imports
only from its own wing or from the wings below it, and every stage starts in
``pipeline/<stage>/stage.py``. Checked on the source with ``ast`` (no import needed)."""
from __future__ import annotations

import ast
from pathlib import Path

from pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
# top to bottom; wings on one line are siblings and may not import each other
LAYERS = [
    ("__init__", "__main__"),  # the package's face: pipeline.load_backbone, python -m pipeline
    ("bench",),
    ("demo",),
    ("cluster", "finetune", "detect", "importer"),
    ("report",),
    ("eval",),
    ("export",),
    ("train",),
    ("objectives", "models"),
    ("loader",),
    ("shard", "synth"),
    # the foundation: settings, errors, files, the registry of stages, the command line
    ("cli", "stages", "registry", "config", "errors", "io", "utils", "compat"),
]
RANK = {wing: i for i, layer in enumerate(LAYERS) for wing in layer}
FOUNDATION = len(LAYERS) - 1


def wing(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "pipeline" or m.startswith(("pipeline.", "jobs"))}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((".".join(parts), path))
    return out


def test_every_wing_has_a_layer():
    wings = {wing(name) for name, _ in modules()}
    assert wings - set(RANK) == set(), "add the new wing to LAYERS"


def test_imports_point_down():
    wrong = []
    for name, path in modules():
        src = wing(name)
        for target in imports(path):
            if target.startswith("jobs"):
                wrong.append(f"{name} imports {target} (stages never import jobs/)")
                continue
            dst = wing(target) if target != "pipeline" else "__init__"
            if dst == src or (RANK[src] == FOUNDATION and RANK[dst] == FOUNDATION):
                continue
            if RANK[dst] <= RANK[src]:
                wrong.append(f"{name} imports {target}: {dst} is not below {src}")
    assert wrong == []


def test_each_stage_starts_in_its_wing_stage_py():
    for name in STAGES.names():
        stage = STAGES.get(name)
        module = stage.target.split(":")[0]
        assert module.endswith(".stage"), f"stage {name} starts in {module}"
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
