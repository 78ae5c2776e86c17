"""Command-line overrides of a study: ``--set probe.limit.train=500`` and ``--sweep seed=0,1,2``.

An override is a dotted key into the study's YAML mapping and a value written as YAML
(``500`` is an int, ``true`` a bool, ``[0, 1]`` a list, ``null`` None, anything else a string),
so it is typed exactly as the same value in the file would be, and the study is validated after
the overrides exactly like a file. Integer segments index lists (``models.0.spec=...``);
missing mappings on the way are created (``probe.limit.train=5`` without a ``limit:``).

Each override is validated on its own against the file: one that makes a valid study invalid is
reported as *its* problem (``--set probe.limit.trian=5: probe.limit.trian: ...``) and left out,
so the checks of files and models still run on the rest and every problem is listed at once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from probe.errors import StudyError

__all__ = [
    "Override",
    "OverrideError",
    "apply_overrides",
    "parse_override",
    "parse_sweep",
    "sweep_overrides",
]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\d+$")


class OverrideError(StudyError):
    """An override that cannot be parsed or applied (the message names it; exit code 2)."""


@dataclass(frozen=True)
class Override:
    """One ``key=value`` override.

    Attributes
    ----------
    text : as written on the command line.
    path : the dotted key split into segments; list indices are ints.
    value : the value parsed as YAML.
    """

    text: str
    path: tuple[str | int, ...]
    value: Any

    @property
    def key(self) -> str:
        return ".".join(map(str, self.path))


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text  # e.g. "a: b" is not a scalar; the schema will say what it expected


def parse_override(text: str, option: str = "--set") -> Override:
    """Parse ``a.b.c=value``.

    Examples
    --------
    >>> parse_override("probe.limit.train=500").value
    500
    >>> parse_override("models.0.spec=embedded:minilm").path
    ('models', 0, 'spec')
    >>> parse_override("probe.seeds=[0, 1]").value
    [0, 1]
    """
    key, sep, raw = text.partition("=")
    segments = key.strip().split(".")
    if not sep or not all(_KEY.match(s) for s in segments):
        raise OverrideError(
            f"{option} {text}: expected KEY=VALUE with a dotted key, e.g. probe.limit.train=500"
        )
    path = tuple(int(s) if s.isdigit() else s for s in segments)
    return Override(text, path, _parse_value(raw))


def _apply(data: dict, override: Override, option: str) -> None:
    node: Any = data
    for depth, segment in enumerate(override.path):
        last = depth == len(override.path) - 1
        where = ".".join(map(str, override.path[: depth + 1]))
        if isinstance(segment, int):
            if not isinstance(node, list) or not 0 <= segment < len(node):
                size = f"a list of {len(node)}" if isinstance(node, list) else "not a list"
                raise OverrideError(
                    f"{option} {override.text}: {where}: no item {segment} ({size})"
                )
            if last:
                node[segment] = override.value
            else:
                node = node[segment]
            continue
        if not isinstance(node, dict):
            raise OverrideError(
                f"{option} {override.text}: {where}: the value above is "
                f"{type(node).__name__}, not a mapping"
            )
        if last:
            node[segment] = override.value
        else:
            if node.get(segment) is None:
                node[segment] = {}
            node = node[segment]


def apply_overrides(
    data: dict,
    overrides: Sequence[str],
    problems_of: Callable[[dict], list[str]],
    option: str = "--set",
) -> tuple[dict, list[str], list[str]]:
    """Apply overrides to a copy of ``data``, each validated on its own.

    Parameters
    ----------
    data : the study's YAML mapping.
    overrides : ``key=value`` strings, applied in order (a later one wins).
    problems_of : returns the schema problems of a mapping (empty when valid).

    Returns
    -------
    (data, applied, problems) : the new mapping; the overrides applied; one line per override
    that could not be parsed or applied, or that added schema problems (those are left out).
    """
    result = copy.deepcopy(data)
    applied: list[str] = []
    problems: list[str] = []
    before = set(problems_of(result))
    for text in overrides:
        try:
            override = parse_override(text, option)
            trial = copy.deepcopy(result)
            _apply(trial, override, option)
        except OverrideError as exc:
            problems.append(str(exc))
            continue
        added = [p for p in problems_of(trial) if p not in before]
        if added:
            problems += [f"{option} {text}: {p}" for p in added]
            continue
        result = trial
        applied.append(text)
    return result, applied, problems


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``[0,1],[2]`` -> ``[0,1]``, ``[2]``."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts]


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """Parse ``key=v1,v2,...`` into the key and its values (at least two).

    Examples
    --------
    >>> parse_sweep("seed=0,1,2")
    ('seed', ['0', '1', '2'])
    >>> parse_sweep("probe.seeds=[0,1],[2]")
    ('probe.seeds', ['[0,1]', '[2]'])
    """
    key, sep, raw = text.partition("=")
    values = [v for v in _split_top_level(raw) if v] if sep else []
    if not sep or not key.strip() or not values:
        raise OverrideError(f"--sweep {text}: expected KEY=V1,V2,... e.g. seed=0,1,2")
    parse_override(f"{key.strip()}=x", "--sweep")  # the key's syntax
    return key.strip(), values


def sweep_overrides(sweeps: Sequence[str]) -> list[list[str]]:
    """Every combination of the sweeps as a list of ``key=value`` overrides (one per run).

    Examples
    --------
    >>> sweep_overrides(["seed=0,1", "probe.C=[1.0],[0.1]"])
    [['seed=0', 'probe.C=[1.0]'], ['seed=0', 'probe.C=[0.1]'], ['seed=1', 'probe.C=[1.0]'], \
['seed=1', 'probe.C=[0.1]']]
    >>> sweep_overrides([])
    [[]]
    """
    runs: list[list[str]] = [[]]
    for text in sweeps:
        key, values = parse_sweep(text)
        runs = [[*run, f"{key}={value}"] for run in runs for value in values]
    return runs
