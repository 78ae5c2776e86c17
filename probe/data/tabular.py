"""Readers for simple tables: sentence labels and sentence pairs, as TSV (with a header) or
JSON lines.

A sentence-label file names a text column and a label column::

    sentence<TAB>label                      {"sentence": "Das ist gut .", "label": "pos"}
    Das ist gut .<TAB>pos

A sentence-pair file names two text columns and a score column (STS-style). Text is split on
whitespace into words. TSV is read without quoting (sentences contain unbalanced quotes, see
:mod:`probe.data.sts`), so a field cannot contain a tab.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.data.registry import open_text
from probe.data.sts import STSPair
from probe.errors import DataError

__all__ = ["SentenceLabel", "read_records", "read_sentence_labels", "read_sentence_pairs"]


@dataclass(frozen=True)
class SentenceLabel:
    """The words of one sentence and its label."""

    words: tuple[str, ...]
    label: str


def _is_jsonl(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return name.endswith((".jsonl", ".json", ".ndjson"))


def read_records(
    path: str | Path, columns: Sequence[str], *, jsonl: bool | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, [value of each column])`` of a TSV-with-header or JSONL file.

    ``jsonl`` None decides by suffix (``.jsonl``, ``.json``, ``.ndjson``: JSON lines).

    Raises
    ------
    DataError
        Naming the file (and line) of a missing column (listing those the file has), a row with
        the wrong number of fields, invalid JSON, or an empty value.
    """
    path = Path(path)
    with open_text(path) as f:
        if _is_jsonl(path) if jsonl is None else jsonl:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    record: Any = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataError(
                        f"{path}:{lineno}: not a JSON object ({exc.msg}); expected one object "
                        f"per line with keys {', '.join(columns)}"
                    ) from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {raw.strip()!r}")
                missing = [c for c in columns if c not in record]
                if missing:
                    raise DataError(
                        f"{path}:{lineno}: no key {missing[0]!r}; the object has "
                        f"{', '.join(map(repr, record))}"
                    )
                yield lineno, [_value(record[c], c, path, lineno) for c in columns]
            return
        header_line = f.readline()
        header = header_line.rstrip("\r\n").split("\t")
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: no column {missing[0]!r}; the header has "
                f"{', '.join(map(repr, header))} (a TSV file starts with a header row)"
            )
        index = [header.index(c) for c in columns]
        for lineno, raw in enumerate(f, start=2):
            if not raw.strip():
                continue
            fields = raw.rstrip("\r\n").split("\t")
            if len(fields) != len(header):
                raise DataError(
                    f"{path}:{lineno}: expected {len(header)} tab-separated fields as in the "
                    f"header, got {len(fields)}"
                )
            yield (
                lineno,
                [_value(fields[i], c, path, lineno) for i, c in zip(index, columns, strict=True)],
            )


def _value(value: Any, column: str, path: Path, lineno: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{path}:{lineno}: {column} must be text or a number, got {value!r}")
    text = str(value).strip()
    if not text:
        raise DataError(f"{path}:{lineno}: {column} is empty")
    return text


def read_sentence_labels(
    path: str | Path, *, text: str = "sentence", label: str = "label", jsonl: bool | None = None
) -> list[SentenceLabel]:
    """Read sentence-level labels from a TSV (with header) or JSONL file; see the module doc."""
    return [
        SentenceLabel(tuple(sentence.split()), value)
        for _, (sentence, value) in read_records(path, (text, label), jsonl=jsonl)
    ]


def read_sentence_pairs(
    path: str | Path,
    *,
    text1: str = "sentence1",
    text2: str = "sentence2",
    score: str = "score",
    jsonl: bool | None = None,
) -> list[STSPair]:
    """Read scored sentence pairs (STS-style) from a TSV (with header) or JSONL file."""
    pairs = []
    for lineno, (a, b, value) in read_records(path, (text1, text2, score), jsonl=jsonl):
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"{path}:{lineno}: {score} {value!r} is not a number") from None
        pairs.append(STSPair(a, b, number))
    return pairs
