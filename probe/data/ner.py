"""Named-entity readers: UNER ``.iob2`` files and CoNLL-2003 ``word POS chunk NER`` files.

Both formats put one token per line and end a sentence with a blank line:

- UNER (``.iob2``): 5 tab-separated columns ``index word tag - annotator``, plus ``# sent_id`` /
  ``# text`` comment lines.
- CoNLL-2003: 4 space-separated columns ``word POS chunk NER``; ``-DOCSTART- -X- -X- O`` lines
  separate documents and are skipped.

The copies registered here are IOB2 (every entity starts with ``B-``), but :func:`iob2_spans`
also treats an ``I-X`` that does not continue an ``X`` entity as the start of a new one, which is
exactly the IOB1 rule; spans therefore come out right for either scheme.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from probe.data.registry import open_text, require_content
from probe.errors import DataError

__all__ = ["NERSentence", "iob2_spans", "read_conll2003", "read_iob2", "read_ner", "read_tagged"]

_TAG = re.compile(r"O|[BI]-[^\s]+")


@dataclass(frozen=True)
class NERSentence:
    """One sentence with its entity tags.

    Attributes
    ----------
    words, tags : tuple of str, each of length n_words
        Tags are ``O``, ``B-TYPE`` or ``I-TYPE``.
    sent_id : str or None
        From a ``# sent_id = ...`` comment (UNER), else None.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    sent_id: str | None = None

    @property
    def spans(self) -> list[tuple[int, int, str]]:
        """Entity spans ``(start, end_exclusive, type)``, see :func:`iob2_spans`."""
        return iob2_spans(self.tags)


def iob2_spans(tags: tuple[str, ...] | list[str]) -> list[tuple[int, int, str]]:
    """Return the entity spans of an IOB2 (or IOB1) tag sequence.

    An ``I-X`` tag that does not continue an entity of type ``X`` starts a new entity rather
    than being dropped (robust to IOB1 and to annotation slips).

    Parameters
    ----------
    tags : sequence of str
        ``O``, ``B-X`` or ``I-X`` per word.

    Returns
    -------
    list of (int, int, str)
        ``(start, end_exclusive, type)`` word spans in order.

    Examples
    --------
    >>> iob2_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    [(0, 2, 'PER'), (3, 4, 'LOC'), (4, 5, 'LOC'), (5, 6, 'ORG')]
    """
    spans: list[tuple[int, int, str]] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, _, typ = tag.partition("-")
        if prefix == "I" and kind == typ and start >= 0:
            continue
        if start >= 0:
            spans.append((start, i, kind))
            start, kind = -1, ""
        if prefix in ("B", "I") and typ:
            start, kind = i, typ
    if start >= 0:
        spans.append((start, len(tags), kind))
    return spans


def _check_tag(tag: str, where: str, lineno: int) -> None:
    if not _TAG.fullmatch(tag):
        raise DataError(f"{where}:{lineno}: {tag!r} is not an IOB tag (O, B-TYPE or I-TYPE)")


def read_iob2(path: str | Path) -> list[NERSentence]:
    """Read a UNER ``.iob2`` file (5 tab-separated columns, ``#`` comments).

    Raises
    ------
    DataError
        Naming the file and line of a line with the wrong column count or an invalid tag.
    """
    where = str(path)
    sentences: list[NERSentence] = []
    words: list[str] = []
    tags: list[str] = []
    sent_id: str | None = None
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if words:
                    sentences.append(NERSentence(tuple(words), tuple(tags), sent_id))
                words, tags, sent_id = [], [], None
                continue
            if line.startswith("#"):
                key, sep, value = line[1:].partition("=")
                if sep and key.strip() == "sent_id":
                    sent_id = value.strip()
                continue
            cols = line.split("\t")
            if len(cols) != 5:
                raise DataError(
                    f"{where}:{lineno}: expected 5 tab-separated columns "
                    f"(index word tag - annotator), got {len(cols)}; is this a UNER .iob2 file?"
                )
            _check_tag(cols[2], where, lineno)
            words.append(cols[1])
            tags.append(cols[2])
    if words:
        sentences.append(NERSentence(tuple(words), tuple(tags), sent_id))
    return require_content(sentences, path, "sentences")


def read_conll2003(path: str | Path) -> list[NERSentence]:
    """Read a CoNLL-2003 file (``word POS chunk NER``, space-separated), skipping ``-DOCSTART-``.

    Raises
    ------
    DataError
        Naming the file and line of a line with the wrong column count or an invalid tag.
    """
    where = str(path)
    sentences: list[NERSentence] = []
    words: list[str] = []
    tags: list[str] = []
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            cols = raw.split()
            if not cols:
                if words:
                    sentences.append(NERSentence(tuple(words), tuple(tags)))
                words, tags = [], []
                continue
            if cols[0] == "-DOCSTART-":
                continue
            if len(cols) != 4:
                raise DataError(
                    f"{where}:{lineno}: expected 4 space-separated columns (word POS chunk NER), "
                    f"got {len(cols)}; is this a CoNLL-2003 file?"
                )
            _check_tag(cols[3], where, lineno)
            words.append(cols[0])
            tags.append(cols[3])
    if words:
        sentences.append(NERSentence(tuple(words), tuple(tags)))
    return require_content(sentences, path, "sentences")


def read_ner(path: str | Path) -> list[NERSentence]:
    """Read either NER format, chosen by suffix: ``.iob2`` is UNER, anything else CoNLL-2003."""
    name = Path(path).name.removesuffix(".gz")
    return read_iob2(path) if name.endswith(".iob2") else read_conll2003(path)


def read_tagged(path: str | Path) -> list[NERSentence]:
    """Read any one-token-per-line IOB file: the word is the first column, the tag the last.

    This covers CoNLL-2003 (``word POS chunk NER``), two-column ``word tag`` files and most
    exports of annotation tools. Columns are tab-separated when a line holds a tab, else split on
    whitespace; every token line of a file must have the same number of columns. Blank lines end
    sentences; ``-DOCSTART-`` lines and ``# key = value`` comments are skipped.

    Raises
    ------
    DataError
        Naming the file and line of a line with too few or a changed number of columns, or a
        tag that is not ``O``, ``B-TYPE`` or ``I-TYPE``.
    """
    where = str(path)
    sentences: list[NERSentence] = []
    words: list[str] = []
    tags: list[str] = []
    n_columns: tuple[int, int] | None = None  # (count, line where it was set)
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if words:
                    sentences.append(NERSentence(tuple(words), tuple(tags)))
                words, tags = [], []
                continue
            if line.startswith("-DOCSTART-") or (line.startswith("# ") and "=" in line):
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2:
                raise DataError(
                    f"{where}:{lineno}: expected a word and its IOB tag (word ... tag), got "
                    f"{len(cols)} column; is this a tagged file?"
                )
            if n_columns is None:
                n_columns = (len(cols), lineno)
            elif len(cols) != n_columns[0]:
                raise DataError(
                    f"{where}:{lineno}: expected {n_columns[0]} columns as on line "
                    f"{n_columns[1]}, got {len(cols)}"
                )
            _check_tag(cols[-1], where, lineno)
            words.append(cols[0])
            tags.append(cols[-1])
    if words:
        sentences.append(NERSentence(tuple(words), tuple(tags)))
    return require_content(sentences, path, "sentences")
