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


def _readers():
    """(file name, write it into a folder, read the folder) of each JSON format."""
    from pipeline.eval.results import read_eval
    from pipeline.export.manifest import verify_export
    from pipeline.models.export_spec import read_spec
    from pipeline.shard.index import read_index
    from pipeline.shard.splits import read_splits
    return [("index.json", read_index), ("splits.json", read_splits), ("eval.json", read_eval),
            ("config.json", read_spec), ("manifest.json", verify_export)]


HOSTILE = [("", "unreadable"), ("{", "unreadable"), ("\xff\xfe", "unreadable"),
           ("[" * 200_000, r"unreadable \(nested too deeply to read\)"), ("[1]", r"not .* \(a JSON object\)")]


@pytest.mark.parametrize("text, why", HOSTILE)
def test_every_json_format_answers_a_hostile_file_the_same_way(tmp_path, text, why):
    """The ways a file fails to be a JSON object are answered by one reader
    (``pipeline/io/json_object.py``): one InputError naming the path, for every format."""
    from pipeline.errors import InputError
    for name, read in _readers():
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        (folder / name).write_bytes(text.encode("latin-1"))
        with pytest.raises(InputError, match=f"{folder / name}: {why}"):
            read(folder)
