"""Typed configs: YAML files and ``key=value`` overrides merged onto dataclass schemas.

Every stage's schema is a dataclass next to the code it configures. This module merges
sources onto it, then checks every value against the rules declared beside its field,
and turns any problem into one message that names the key at fault and the file (or the
command line) it came from, before any work starts.

Value rules live in the field's metadata, next to its help text:
``"min"`` / ``"max"`` (inclusive), ``"above"`` / ``"below"`` (exclusive), ``"choices"``
(allowed values) and ``"pattern"`` (a regular expression the whole string must match);
on a list or tuple they apply to every element. Rules between fields go in a
``check(self)`` method of the dataclass that raises ``ConfigError(why, key=FIELD)``.
A schema whose sections depend on a value (a training run's on its ``method``) declares
``config_variant`` (see ``_variant``).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")


def _configs() -> Path:
    """The recipes, stage defaults and SLURM profiles: the repository's top-level
    ``configs/``, shipped in the wheel as package ``pipeline.configs``."""
    try:  # an installed wheel or an editable install: the package data of pipeline.configs
        return Path(str(resources.files("pipeline.configs")))
    except ModuleNotFoundError:  # a bare checkout on PYTHONPATH: the repository's configs/
        return Path(__file__).resolve().parents[1] / "configs"


CONFIGS = _configs()

__all__ = ["MISSING", "ConfigError", "load_config", "resolve_schema", "check_values", "save_config", "flat_fields", "CONFIGS"]


class ConfigError(ValueError):
    """A config problem, reported before any work starts.

    ``key``: the field at fault, relative to the dataclass whose ``check()`` raised it
    (``load_config`` prefixes its dotted path and names where the value came from)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _keys(node: Any, prefix: str = "") -> list[tuple[str, bool]]:
    """(dotted key, is a section) for every key of a config, unresolved (no interpolation
    runs), through OmegaConf's public API only."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=False, throw_on_missing=False)
    keys: list[tuple[str, bool]] = []
    if isinstance(node, dict):
        for k, child in node.items():
            full = f"{prefix}.{k}" if prefix else str(k)
            keys.append((full, isinstance(child, dict)))
            keys.extend(_keys(child, full))
    return keys


def _leaf_keys(node: Any) -> list[str]:
    """Every dotted key of a config, sections included, for suggestions."""
    return [k for k, _ in _keys(node)]


def _set_keys(node: DictConfig) -> list[str]:
    """Dotted keys of the values (not sections) a YAML file or override sets."""
    return [k for k, section in _keys(node) if not section]


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


_INTERPOLATION = re.compile(r"(?<!\\)\$\{")  # ``${`` not escaped as ``\${``


def _refuse_interpolation(layer: DictConfig, source: str) -> None:
    """Settings are plain values: an interpolation (``${key}``, ``${oc.env:VAR}``,
    ``${oc.decode:...}``, any resolver) is refused where it is read, so no environment
    value is ever resolved into a config (nor written into a run's ``config.yaml``) and a
    self-reference cannot recurse. A literal ``${`` is written with a backslash before the dollar."""
    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k, key)
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and _INTERPOLATION.search(node):
            raise ConfigError(f"{source}: key '{key or '?'}': {node[:60]!r} is an interpolation; settings are "
                              "plain values (no ${...}: write the value itself, or \\${ for a literal)")
    walk(OmegaConf.to_container(layer, resolve=False, throw_on_missing=False), "")


def _layers(files: Iterable[str | os.PathLike], overrides: Iterable[str]) -> list[tuple[str, DictConfig]]:
    """(source, layer) of every YAML file then every override, each read and checked."""
    layers = []
    for f in files:
        layer = _read_yaml(Path(f))
        _refuse_interpolation(layer, str(f))
        layers.append((str(f), layer))
    for item in overrides:
        layer = _parse_override(item)
        _refuse_interpolation(layer, f"command line '{item}'")
        layers.append((f"command line '{item}'", layer))
    return layers


def _variant(schema: type, layers: list[tuple[str, DictConfig]]) -> tuple[type, list[tuple[str, DictConfig]]]:
    """A schema whose shape depends on a value (a training run's sections on its ``method``)
    declares ``config_variant(layers) -> (schema, layers)``; others are taken as they are."""
    pick = getattr(schema, "config_variant", None)
    return pick(layers) if callable(pick) else (schema, layers)


def resolve_schema(schema: type, files: Iterable[str | os.PathLike] = (), overrides: Iterable[str] = ()) -> type:
    """The dataclass ``load_config`` would build for these sources (for ``--help``)."""
    return _variant(schema, _layers(files, overrides))[0]


def load_config(schema: type[T], files: Iterable[str | os.PathLike] = (),
                overrides: Iterable[str] = ()) -> T:
    """Merge YAML ``files`` then ``overrides`` onto ``schema``; return a typed instance
    whose every value obeys its field's rules (see the module docstring)."""
    schema, layers = _variant(schema, _layers(files, overrides))
    cfg = OmegaConf.structured(schema)
    sources: dict[str, str] = {}
    for source, layer in layers:
        cfg = _merge(cfg, layer, source)
        sources.update(dict.fromkeys(_set_keys(layer), source))
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError("missing required value(s): " + ", ".join(missing)
                          + " (set them in a config file or as key=value)")
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise _explain(err, cfg, "config") from None
    except RecursionError:  # a cycle or depth no interpolation check foresaw
        raise ConfigError("config: nested too deeply to resolve") from None
    check_values(obj, sources)
    return obj  # type: ignore[return-value]


RULES = ("min", "max", "above", "below", "choices", "pattern")


def rule_text(meta: Any) -> str:
    """The field's value rules in words, for ``--help`` (empty when it has none)."""
    parts = []
    if "choices" in meta:
        parts.append("one of " + ", ".join(repr(c) for c in meta["choices"]))
    if "above" in meta:
        parts.append(f"> {meta['above']}")
    if "min" in meta:
        parts.append(f">= {meta['min']}")
    if "max" in meta:
        parts.append(f"<= {meta['max']}")
    if "below" in meta:
        parts.append(f"< {meta['below']}")
    if "pattern" in meta:
        parts.append(f"matching {meta['pattern']}")
    return ", ".join(parts)


def rule_violation(value: Any, meta: Any) -> str | None:
    """Why ``value`` breaks the rules in ``meta``, or None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for v in value:
            why = rule_violation(v, meta)
            if why:
                return f"element {v!r} {why}"
        return None
    if "choices" in meta and value not in meta["choices"]:
        return "must be " + rule_text({"choices": meta["choices"]})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return "must be a finite number"
        if ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]) \
                or ("above" in meta and value <= meta["above"]) \
                or ("below" in meta and value >= meta["below"]):
            return "must be " + rule_text({k: meta[k] for k in ("above", "min", "max", "below")
                                           if k in meta})
    if isinstance(value, str) and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        return f"must match {meta['pattern']}"
    return None


def check_values(cfg: Any, sources: dict[str, str] | None = None, prefix: str = "") -> None:
    """Check a typed config (recursively) against its fields' rules and ``check()`` methods;
    the first problem is a ConfigError naming the dotted key and its source."""
    sources = sources or {}

    def where(key: str) -> str:
        if key not in sources:
            key = re.sub(r"\[\d+\]", "", key)  # an element of a list set whole
        while key and key not in sources:  # inside a value set whole (a dict of args)
            key = key.rpartition(".")[0]
        return sources.get(key, "default")

    for f in dataclasses.fields(cfg):
        key, value = prefix + f.name, getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_values(value, sources, key + ".")
            continue
        if isinstance(value, list) and value and all(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):  # e.g. several weighted loader sources
                check_values(item, sources, f"{key}[{i}].")
            continue
        why = rule_violation(value, f.metadata)
        if why:
            raise ConfigError(f"{where(key)}: bad value for key '{key}': {value!r}; {why}")
    check = getattr(cfg, "check", None)
    if callable(check):
        try:
            check()
        except ConfigError as err:
            if err.key is None:
                raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None
            key = prefix + err.key
            raise ConfigError(f"{where(key)}: bad value for key '{key}': {err}", key=key) from None


def _escape(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _escape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape(v) for v in node]
    return _INTERPOLATION.sub(r"\\${", node) if isinstance(node, str) else node


def to_yaml(cfg: Any) -> str:
    """The config as YAML that loads back to the same values: a literal ``${`` in a
    value is written escaped, so nothing in a saved config is ever resolved."""
    node = OmegaConf.structured(cfg)
    plain = OmegaConf.to_container(node, resolve=False, throw_on_missing=False, enum_to_str=True)
    if "${" not in repr(plain):
        return OmegaConf.to_yaml(node)
    return OmegaConf.to_yaml(OmegaConf.create(_escape(plain)))


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
        rules = rule_text(f.metadata)
        helptext = f.metadata.get("help", "") + (f" [{rules}]" if rules else "")
        rows.append((key, tname, default, helptext.strip()))
    return rows


def _type_hints(schema: type) -> dict[str, Any]:
    import typing
    return typing.get_type_hints(schema)
