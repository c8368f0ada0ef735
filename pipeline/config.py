"""Typed configs: YAML files and ``key=value`` overrides merged onto dataclass schemas.

Every stage's schema is a dataclass next to the code it configures. This module only
merges sources onto it and turns OmegaConf's errors into one message that names the
key at fault and the file (or the command line) it came from, before any work starts.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")

# The packaged recipes, stage defaults and SLURM profiles (``pipeline/configs/``), found
# the same way from a source checkout and from an installed wheel.
CONFIGS = Path(str(resources.files("pipeline") / "configs"))

__all__ = ["MISSING", "ConfigError", "load_config", "save_config", "flat_fields", "CONFIGS"]


class ConfigError(ValueError):
    """A config problem, reported before any work starts."""


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config (unresolved: no interpolation runs), for suggestions."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    keys = []
    if isinstance(node, dict):
        for k, child in node.items():
            full = f"{prefix}.{k}" if prefix else str(k)
            keys.append(full)
            keys.extend(_leaf_keys(child, full))
    return keys


def _explain(err: OmegaConfBaseException, base: DictConfig, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or "?"
    if isinstance(err, ConfigKeyError):
        close = difflib.get_close_matches(key, _leaf_keys(base), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return ConfigError(f"{source}: unknown key '{key}'{hint}")
    msg = str(err).splitlines()[0]
    return ConfigError(f"{source}: bad value for key '{key}': {msg}")


def _merge(base: DictConfig, other: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise _explain(err, base, source) from None


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = OmegaConf.load(path)
    except Exception as err:  # YAML syntax errors come from several libraries
        raise ConfigError(f"{path}: cannot parse YAML: {err}") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def _parse_override(item: str) -> DictConfig:
    if "=" not in item:
        raise ConfigError(f"command line: '{item}' is not key=value")
    try:
        return OmegaConf.from_dotlist([item])
    except Exception as err:  # OmegaConf's own errors and YAML scanner errors
        raise ConfigError(f"command line: cannot parse '{item}': {err}") from None


def load_config(schema: type[T], files: Iterable[str | os.PathLike] = (),
                overrides: Iterable[str] = ()) -> T:
    """Merge YAML ``files`` then ``overrides`` onto ``schema``; return a typed instance."""
    cfg = OmegaConf.structured(schema)
    for f in files:
        path = Path(f)
        cfg = _merge(cfg, _read_yaml(path), str(path))
    for item in overrides:
        cfg = _merge(cfg, _parse_override(item), f"command line '{item}'")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError("missing required value(s): " + ", ".join(missing)
                          + " (set them in a config file or as key=value)")
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise _explain(err, cfg, "config") from None


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def save_config(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config atomically (several processes may write the same one)."""
    from pipeline.io.atomic import write_text
    return write_text(path, to_yaml(cfg))


def flat_fields(schema: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type name, default, help) for every leaf of a dataclass schema."""
    rows = []
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        ftype = f.type if isinstance(f.type, type) else None
        if ftype is None and isinstance(f.type, str):
            hints = _type_hints(schema)
            ftype = hints.get(f.name)
        if dataclasses.is_dataclass(ftype):
            rows.extend(flat_fields(ftype, key + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = MISSING
        tname = getattr(ftype, "__name__", None) or str(ftype).replace("typing.", "")
        rows.append((key, tname, default, f.metadata.get("help", "")))
    return rows


def _type_hints(schema: type) -> dict[str, Any]:
    import typing
    return typing.get_type_hints(schema)
