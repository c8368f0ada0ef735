"""Each on-disk format has one module with its writer and its reader (one behaviour for
"missing"): no other module of pipeline/ or jobs/ spells the file's name."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWNER = {  # file name -> the one module that reads and writes it
    "index.json": "pipeline/shard/index.py",
    "splits.json": "pipeline/shard/splits.py",
    "config.json": "pipeline/models/export_spec.py",
    "eval.json": "pipeline/eval/results.py",
    "metrics.jsonl": "pipeline/train/metrics_log.py",
}


def spelling(name: str) -> list[str]:
    """The modules with a string constant naming ``name`` (alone or as a path's last part)."""
    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "jobs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.rstrip("/").split("/")[-1] == name:
                found.append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("name", sorted(OWNER))
def test_one_module_names_the_file(name):
    assert spelling(name) == [OWNER[name]]
