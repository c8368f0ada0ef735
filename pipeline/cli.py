"""``python -m pipeline <stage> [RECIPE | CONFIG.yaml ...] [key=value ...] [--key value] [--quiet]``.

Arguments are read as: files ending in .yaml/.yml are configs (merged in order onto the
stage's schema defaults: a recipe states what it needs, no other file is merged under it),
a bare name of a packaged recipe (``gdt_tiny`` for ``configs/gdt_tiny.yaml``, found
inside the installed package) is a config too, ``key=value`` and ``--key value`` are
overrides, other bare words fill the stage's positional keys. ``--help`` on a stage lists
every key with its type, default and meaning, generated from the schema.
"""
from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from pipeline.config import CONFIGS, ConfigError, flat_fields, load_config, resolve_schema
from pipeline.errors import InputError
from pipeline.stages import BENCHES, STAGES, Stage

PROG = "python -m pipeline"


def recipes() -> list[str]:
    """Names of the packaged recipes, usable as bare words: ``configs/*.yaml`` and
    ``deepspeed/*.yaml`` without the suffix (SLURM profiles are the launcher's)."""
    found = [p.relative_to(CONFIGS).as_posix()[:-5] for p in CONFIGS.rglob("*.yaml")]
    return sorted(name for name in found if not name.startswith("slurm/"))


def recipe_path(word: str) -> Path | None:
    """The packaged recipe a bare word names, or None."""
    return CONFIGS / f"{word}.yaml" if word in recipes() else None


def _overview() -> str:
    lines = [f"usage: {PROG} <stage> [CONFIG.yaml ...] [key=value ...] [--quiet]", "", "stages:"]
    for s in STAGES:
        lines.append(f"  {s.name:<10} {s.help}")
    if BENCHES:
        lines.append(f"  {'bench':<10} benchmarks, JSON out: " + ", ".join(b.name for b in BENCHES))
    lines += ["", f"'{PROG} <stage> --help' lists the stage's config keys."]
    return "\n".join(lines)


def _help_schema(stage: Stage, args: Sequence[str]) -> type:
    """The schema the other arguments select (``train selavi_tiny --help`` lists SeLaVi's
    sections); the stage's own schema where they select nothing or do not parse."""
    try:
        files, overrides, _ = parse_args(stage, [a for a in args if a not in ("-h", "--help")])
        return resolve_schema(stage.load_schema(), files, overrides)
    except ConfigError:
        return stage.load_schema()


def _stage_help(stage: Stage, prefix: str, args: Sequence[str] = ()) -> str:
    pos = " ".join(k.upper() for k in stage.positional)
    lines = [f"usage: {PROG} {prefix}{stage.name} {pos + ' ' if pos else ''}"
             "[RECIPE | CONFIG.yaml ...] [key=value ...] [--key value ...] [--quiet]", "", stage.help, "",
             f"packaged recipes (by name): {', '.join(recipes())}", ""]
    schema = _help_schema(stage, args)
    if hasattr(schema, "config_variant"):  # a training run: the keys of one method's sections
        lines.append(f"config keys of {schema.__module__}.{schema.__qualname__} (another method's: add "
                     "method=NAME or its recipe before --help), type, default:")
    else:
        lines.append("config keys (type, default):")
    for key, tname, default, helptext in flat_fields(schema):
        shown = "REQUIRED" if str(default) == "???" else repr(default)
        lines.append(f"  {key} ({tname}, {shown})")
        if helptext:
            lines.extend(textwrap.wrap(helptext, 76, initial_indent="      ",
                                       subsequent_indent="      "))
    return "\n".join(lines)


def parse_args(stage: Stage, args: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """Split arguments into (config files, overrides, quiet)."""
    files, overrides, quiet = [], [], False
    positional = list(stage.positional)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-q", "--quiet"):
            quiet = True
        elif a.startswith("--"):
            key = a[2:]
            if "=" in key:
                key, value = key.split("=", 1)
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise ConfigError(f"command line: option {a} needs a value")
            overrides.append(f"{key.replace('-', '_')}={value}")
        elif a.endswith((".yaml", ".yml")) and "=" not in a:
            files.append(a)
        elif "=" in a:
            overrides.append(a)
        elif recipe_path(a) is not None:
            files.append(str(recipe_path(a)))
        elif positional:
            overrides.append(f"{positional.pop(0)}={a}")
        else:
            raise ConfigError(f"command line: unexpected argument '{a}' (not key=value, a .yaml "
                              f"file or a packaged recipe: {', '.join(recipes())})")
        i += 1
    return files, overrides, quiet


def build_config(stage: Stage, files: Sequence[str], overrides: Sequence[str]):
    return load_config(stage.load_schema(), list(files), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview())
        return 0
    name, rest, table, prefix = argv[0], argv[1:], STAGES, ""
    if name == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(f"usage: {PROG} bench <name> [--key value ...] --json OUT.json\n\nbenchmarks:")
            for b in BENCHES:
                print(f"  {b.name:<10} {b.help}")
            return 0
        name, rest, table, prefix = rest[0], rest[1:], BENCHES, "bench "
    try:
        stage = table[name]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        print(_stage_help(stage, prefix, rest))
        return 0
    if "--quiet" in rest or "-q" in rest:
        os.environ["TQDM_DISABLE"] = "1"  # before tqdm is imported; inherited by workers
    try:
        files, overrides, quiet = parse_args(stage, rest)
        cfg = build_config(stage, files, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        stage.load_target()(cfg)
    except (InputError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
