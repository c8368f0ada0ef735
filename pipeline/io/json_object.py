"""The one reader of the project's JSON files (index.json, splits.json, eval.json, an
export's config.json and manifest.json): present, readable, parsed, an object.

Why one function: these files come from other runs, other machines and other versions, so
each read meets the same hostile cases (absent, truncated, not UTF-8, unreadable, nested
200,000 deep, a list where an object belongs). Each format module keeps its own checks of
the keys; the ways a file can fail to be a JSON object are answered here, once, as one
``InputError`` that names the path and says how to rebuild the file.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import InputError


def read_json_object(path: str | Path, what: str, missing: str, fix: str) -> dict:
    """The JSON object in ``path``. ``what`` names the format ("a shard index"), ``missing``
    says why the file is absent, ``fix`` how to rebuild it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path}: unreadable ({str(err)[:80]}); {fix}") from None
    except RecursionError:  # e.g. 200,000 nested '['
        raise InputError(f"{path}: unreadable (nested too deeply to read); {fix}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: not {what} (a JSON object); {fix}")
    return value
