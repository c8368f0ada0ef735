"""Tables of named things (stages, benchmarks, methods, backbones) and the one resolver of
``"package.module:attr"`` import strings.

Why import strings: a table can list every stage or method without importing it, so
``--help`` does not pay for torch, and a submitit pickle of a job task stays a few bytes
that a requeued job resolves against the installed code. Why one ``Registry`` class: every
table answers an unknown name the same way, with one error listing the known names.
"""
from __future__ import annotations

import importlib
from typing import Any, Generic, Iterable, Iterator, TypeVar

from pipeline.config import ConfigError

T = TypeVar("T")


def resolve(spec: str) -> Any:
    """The object an import string names: ``"pipeline.train.stage:run"`` -> that function
    (``attr`` may be dotted: ``"module:Class.method"``)."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{spec!r}: not an import string 'package.module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Entries by name, in the order given; ``table[name]`` raises one ``ConfigError`` that
    lists the known names (``what`` says what the names are: "stage", "method", ...).
    ``name in table`` asks for a name; iterating yields the entries (as the tuples of
    stages it replaces did), ``names()`` the names."""

    def __init__(self, what: str, entries: dict[str, T] | Iterable[tuple[str, T]]):
        self.what = what
        self._entries: dict[str, T] = {}
        for name, entry in (entries.items() if isinstance(entries, dict) else entries):
            if name in self._entries:
                raise ValueError(f"{what} {name!r} registered twice")
            self._entries[name] = entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.what} {name!r}; choose from {', '.join(self._entries)}") from None

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        """The entries (not the names), in registration order."""
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
