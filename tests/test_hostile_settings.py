"""Nonsense settings (issue 16, item 3) stop the run before any work with one line that
names the key, instead of being blamed on the videos or crashing after the first step.

The walk covers every numeric key of every schema the stage table (``STAGES``,
``BENCHES``), each training method's run config and the launcher use, nested dataclasses and lists of them included, so a
schema or field added later is covered without touching this file: 0 and -1 are either
refused with a ConfigError naming the dotted key and where the value came from, or
accepted by a range the field declares (shown by ``--help``).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest

from jobs.config import LaunchConfig, SlurmConfig
from pipeline.cli import build_config, main
from pipeline.config import (MISSING, RULES, ConfigError, check_values, flat_fields, load_config,
                             rule_violation)
from pipeline.stages import BENCHES, STAGES
from pipeline.train.methods import METHODS

PLACEHOLDER = "placeholder"
DATA = Path(__file__).parent / "data"


def _schemas() -> list[tuple[str, typing.Any]]:
    """(name, typed default config) of every stage and benchmark schema, and the launcher's."""
    out, seen = [], set()
    for prefix, table in (("", STAGES), ("bench ", BENCHES)):
        for stage in table:
            if stage.schema in seen:
                continue
            seen.add(stage.schema)
            required = [f"{k}={PLACEHOLDER}" for k, _, default, _ in flat_fields(stage.load_schema())
                        if str(default) == MISSING]
            out.append((prefix + stage.name, build_config(stage, [], required)))
    for method in METHODS.names():  # each method's run config: its own sections
        out.append((f"train method={method}", build_config(STAGES["train"], [], [f"out={PLACEHOLDER}", f"method={method}"])))
    out += [("jobs slurm", load_config(SlurmConfig)), ("jobs launch", load_config(LaunchConfig))]
    return out


def _numeric_fields(obj: typing.Any, prefix: str = ""):
    """(dotted key, owning dataclass instance, field) of every int/float leaf, recursing into
    nested dataclasses and into lists of them (one element added where the list is empty)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value, hint = prefix + f.name, getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            yield from _numeric_fields(value, key + ".")
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            if not value:
                value.append(typing.get_args(hint)[0]())
            yield from _numeric_fields(value[0], key + "[0].")
        elif _number_type(hint):
            yield key, obj, f


def _number_type(hint) -> type | None:
    """int or float for a numeric field (``int | None`` included), else None."""
    if typing.get_origin(hint) not in (None, typing.Union, types.UnionType):
        return None  # a list or tuple of numbers
    kinds = set(typing.get_args(hint) or (hint,)) - {type(None)}
    return kinds.pop() if len(kinds) == 1 and kinds <= {int, float} else None


CASES = [(name, cfg, key, owner, f) for name, cfg in _schemas() for key, owner, f in _numeric_fields(cfg)]


def test_the_walk_sees_every_schema():
    names = {c[0] for c in CASES}
    assert {"synth", "shard", "train", "detect", "eval", "demo", "bench loader", "jobs slurm"} <= names
    assert len(CASES) > 250  # detect alone nests a whole training config


@pytest.mark.parametrize("value", [0, -1])
def test_zero_and_minus_one_are_refused_or_declared(value):
    """One pass over all keys per value (a test per key would cost more than the checks)."""
    undeclared, unnamed = [], []
    for name, cfg, key, owner, f in CASES:
        old = getattr(owner, f.name)
        setattr(owner, f.name, _number_type(typing.get_type_hints(type(owner))[f.name])(value))
        where = f"command line '{key}={value}'"
        try:
            check_values(cfg, {key: where})
        except ConfigError as err:
            if f"'{key}'" not in str(err) or where not in str(err):
                unnamed.append(f"{name}: {key}={value}: {err}")
        else:
            if not any(r in f.metadata for r in RULES):
                undeclared.append(f"{name}: {key}={value} accepted, but the field declares no range")
            elif rule_violation(value, f.metadata):  # declared, but never enforced
                unnamed.append(f"{name}: {key}={value} accepted against its rule")
        finally:
            setattr(owner, f.name, old)
    assert not unnamed, "\n".join(unnamed)
    assert not undeclared, "\n".join(undeclared)


def test_the_defaults_obey_their_own_rules():
    for name, cfg in _schemas():
        check_values(cfg)


def test_rules_are_shown_by_help():
    rows = {k: h for k, _, _, h in flat_fields(STAGES["train"].load_schema())}
    assert rows["steps"].endswith("[>= 1]")
    assert "one of 'fp32', 'bf16', 'fp16'" in rows["ds.precision"]


# The reproductions of the issue, through the command line as a user types them.
@pytest.mark.parametrize("stage,args,key", [
    ("train", ["steps=-5"], "steps"),
    ("train", ["ckpt.every=0"], "ckpt.every"),
    ("train", ["log_every=0"], "log_every"),
    ("train", ["loader.batch_size=0"], "loader.batch_size"),
    ("train", ["ds.grad_accum=0"], "ds.grad_accum"),
    ("train", ["loader.workers=-1"], "loader.workers"),
    ("train", ["loader.clip.frames=0"], "loader.clip.frames"),
    ("train", ["loader.epoch_batches=0"], "loader.epoch_batches"),
    ("eval", ["batch_size=0", "export=e", "train_shards=a", "test_shards=b"], "batch_size"),
    ("synth", ["fps=0"], "fps"),
    ("shard", ["input_timeout=0"], "input_timeout"),
    ("shard", ["audio_rate=7"], "audio_rate"),
    ("shard", ["stride_seconds=0.001"], "stride_seconds"),
    ("shard", ["name=../escaped"], "name"),
])
def test_cli_refuses_before_any_work(tmp_path, capsys, stage, args, key):
    out = tmp_path / "out"
    extra = {"shard": [f"input={tmp_path}", f"output={out}"]}.get(stage, [f"out={out}"])
    assert main([stage, *extra, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{key}'" in err[0] and "command line" in err[0], err
    assert not out.exists()  # nothing written: in particular no final model of steps=-5


@pytest.mark.parametrize("key", ["preset", "scale_flags"])
def test_shard_probes_the_encoder_once_up_front(tmp_path, capsys, key):
    out = tmp_path / "out"
    assert main(["shard", f"input={DATA}", f"output={out}", f"{key}=bogus"]) == 1
    err = capsys.readouterr().err
    assert f"'{key}'" in err and "bogus" in err
    assert not out.exists()  # no input was marked failed: none was touched
