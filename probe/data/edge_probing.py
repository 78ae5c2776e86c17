"""Reader for jiant's edge-probing JSON lines (Tenney et al. 2019), the community's format for
span and span-pair probing tasks (constituents, SRL, coreference, relations, ...).

One JSON object per line::

    {"text": "The cat sat .", "targets": [{"span1": [0, 2], "label": "NP"},
                                          {"span1": [1, 2], "span2": [2, 3], "label": "ARG0"}]}

``text`` is split on whitespace into words (jiant's files are pre-tokenized); spans are
``[start, end)`` word indices; ``label`` is a string or a one-element list. Every target of a
file has ``span2`` or none has: a file is one task, of span or of span-pair kind. Extra keys
(``info``, ``source``...) are ignored. Written by hand: ``json`` per line is all it takes, and
the checks give a file name and line number that a generic loader would not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.data.registry import open_text, require_content
from probe.errors import DataError

__all__ = ["EdgeSentence", "EdgeTarget", "read_edge_probing"]


@dataclass(frozen=True)
class EdgeTarget:
    """One labelled span (``span2`` None) or span pair, as ``(start, end_exclusive)`` words."""

    span1: tuple[int, int]
    span2: tuple[int, int] | None
    label: str


@dataclass(frozen=True)
class EdgeSentence:
    """The words of one line and its targets (possibly none)."""

    words: tuple[str, ...]
    targets: tuple[EdgeTarget, ...]


def _span(value: Any, key: str, n_words: int, where: str) -> tuple[int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok:
        raise DataError(f"{where}: {key} must be [start, end] word indices, got {value!r}")
    start, end = value
    if not 0 <= start < end <= n_words:
        raise DataError(
            f"{where}: {key} {value} is not a span of the {n_words} words of text "
            "(need 0 <= start < end <= n_words, end exclusive)"
        )
    return start, end


def _label(value: Any, where: str) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise DataError(
            f"{where}: label {value!r} has {len(value)} labels; multi-label targets are not "
            "supported, give one label per target"
        )
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise DataError(f"{where}: label must be a non-empty string, got {value!r}")
    return str(value)


def read_edge_probing(path: str | Path) -> list[EdgeSentence]:
    """Read an edge-probing ``.json``/``.jsonl`` file (one object per line).

    Returns
    -------
    list of EdgeSentence
        In file order; blank lines are skipped.

    Raises
    ------
    DataError
        Naming the file and line of invalid JSON, a missing ``text``/``targets``/``span1``/
        ``label``, a span outside the text, or a target whose ``span2`` presence differs from
        the file's first target.
    """
    sentences: list[EdgeSentence] = []
    pair_kind: tuple[bool, int] | None = None  # (has span2, line where first seen)
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{where}: not a JSON object ({exc.msg}); edge-probing files hold one "
                    '{"text": ..., "targets": [...]} object per line'
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise DataError(f'{where}: expected an object with a "text" string')
            targets = record.get("targets")
            if not isinstance(targets, list):
                raise DataError(f'{where}: expected "targets": a list of {{"span1", "label"}}')
            words = tuple(record["text"].split())
            parsed = []
            for index, target in enumerate(targets):
                here = f"{where}: targets[{index}]"
                if not isinstance(target, dict) or "span1" not in target or "label" not in target:
                    raise DataError(f'{here}: expected an object with "span1" and "label"')
                has_pair = "span2" in target
                if pair_kind is None:
                    pair_kind = (has_pair, lineno)
                elif has_pair != pair_kind[0]:
                    raise DataError(
                        f"{here}: {'has' if has_pair else 'lacks'} span2 but the target on line "
                        f"{pair_kind[1]} {'does not' if has_pair else 'does'}; one file is one "
                        "task, all spans or all span pairs"
                    )
                span2 = _span(target["span2"], "span2", len(words), here) if has_pair else None
                parsed.append(
                    EdgeTarget(
                        _span(target["span1"], "span1", len(words), here),
                        span2,
                        _label(target["label"], here),
                    )
                )
            sentences.append(EdgeSentence(words, tuple(parsed)))
    return require_content(sentences, path, "sentences")
