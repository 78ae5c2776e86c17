"""CoNLL-U reader (Universal Dependencies) for basic dependency trees.

Reads the 10 tab-separated columns ``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC``.
Multiword-token lines (``3-4``) and empty nodes (``8.1``) are skipped: they do not take part in
the basic tree, and the remaining integer-ID lines are exactly the syntactic words the HEAD column
refers to. Written by hand because it is a few lines and the ``conllu`` package would be a new
dependency that still needs the same validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from probe.data.registry import open_text, require_content
from probe.errors import DataError

__all__ = ["UDSentence", "parse_conllu", "parse_feats", "read_conllu"]

_N_COLUMNS = 10
_FEATS = re.compile(r"_|[^=|]+=[^=|]+(?:\|[^=|]+=[^=|]+)*")


@dataclass(frozen=True)
class UDSentence:
    """One sentence of a CoNLL-U file (syntactic words only).

    Attributes
    ----------
    sent_id : str or None
        From the ``# sent_id = ...`` comment.
    text : str or None
        From the ``# text = ...`` comment.
    words, upos, xpos, deprels : tuple of str, each of length n_words
        FORM, UPOS, XPOS and the full DEPREL (subtype included, e.g. ``nmod:poss``).
    heads : tuple of int, of length n_words
        HEAD as in the file: 1-based index of the head word, ``0`` for the root.
    feats : tuple of str, of length n_words
        FEATS as in the file: ``Case=Nom|Number=Sing``, or ``_`` for none (see :func:`parse_feats`).
    """

    sent_id: str | None
    text: str | None
    words: tuple[str, ...]
    upos: tuple[str, ...]
    xpos: tuple[str, ...]
    heads: tuple[int, ...]
    deprels: tuple[str, ...]
    feats: tuple[str, ...] = ()


def parse_feats(feats: str, where: str = "<string>", lineno: int = 0) -> dict[str, str]:
    """Split a FEATS cell into a dict; ``_`` is no features.

    Examples
    --------
    >>> parse_feats("Case=Nom|Number=Sing")
    {'Case': 'Nom', 'Number': 'Sing'}
    >>> parse_feats("_")
    {}
    """
    if feats == "_":
        return {}
    out: dict[str, str] = {}
    for item in feats.split("|"):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DataError(
                f"{where}:{lineno}: FEATS {feats!r} is not Feature=Value pairs joined by '|' "
                "(or _ for none)"
            )
        out[key] = value
    return out


def _build(
    rows: list[tuple[str, str, str, int, str, str]],
    linenos: list[int],
    sent_id: str | None,
    text: str | None,
    where: str,
) -> UDSentence:
    n = len(rows)
    for (_, _, _, head, _, _), lineno in zip(rows, linenos, strict=True):
        if not 0 <= head <= n:
            raise DataError(
                f"{where}:{lineno}: HEAD {head} is outside the sentence (1..{n}, or 0 for root)"
            )
    words, upos, xpos, heads, deprels, feats = zip(*rows, strict=True)
    return UDSentence(sent_id, text, words, upos, xpos, heads, deprels, feats)


def parse_conllu(lines: list[str] | tuple[str, ...], where: str = "<string>") -> list[UDSentence]:
    """Parse CoNLL-U lines; ``where`` names the source in error messages.

    Examples
    --------
    >>> s = parse_conllu(["1\\tHi\\thi\\tINTJ\\tUH\\t_\\t0\\troot\\t_\\t_", ""])[0]
    >>> s.words, s.heads, s.deprels
    (('Hi',), (0,), ('root',))
    """
    sentences: list[UDSentence] = []
    rows: list[tuple[str, str, str, int, str, str]] = []
    linenos: list[int] = []
    sent_id: str | None = None
    text: str | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if rows:
                sentences.append(_build(rows, linenos, sent_id, text, where))
            rows, linenos, sent_id, text = [], [], None, None
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep and key.strip() == "sent_id":
                sent_id = value.strip()
            elif sep and key.strip() == "text":
                text = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != _N_COLUMNS:
            raise DataError(
                f"{where}:{lineno}: expected {_N_COLUMNS} tab-separated CoNLL-U columns, got "
                f"{len(cols)}; is this a CoNLL-U file?"
            )
        tok_id = cols[0]
        if "-" in tok_id or "." in tok_id:
            continue  # multiword token or empty node: not part of the basic tree
        if not tok_id.isdigit() or int(tok_id) != len(rows) + 1:
            raise DataError(
                f"{where}:{lineno}: word ID {tok_id!r} should be {len(rows) + 1} "
                "(IDs must count up from 1 in each sentence)"
            )
        try:
            head = int(cols[6])
        except ValueError:
            raise DataError(f"{where}:{lineno}: HEAD {cols[6]!r} is not an integer") from None
        if not _FEATS.fullmatch(cols[5]):
            parse_feats(cols[5], where, lineno)  # raises, naming what is expected
        rows.append((cols[1], cols[3], cols[4], head, cols[7], cols[5]))
        linenos.append(lineno)
    if rows:
        sentences.append(_build(rows, linenos, sent_id, text, where))
    return sentences


def read_conllu(path: str | Path) -> list[UDSentence]:
    """Read a CoNLL-U file (plain or gzipped) into sentences of syntactic words.

    Parameters
    ----------
    path : str or Path
        A ``.conllu`` or ``.conllu.gz`` file.

    Returns
    -------
    list of UDSentence
        In file order.

    Raises
    ------
    DataError
        Naming the file and line of the first malformed line (wrong column count, bad ID/HEAD).
    """
    with open_text(path) as f:
        sentences = parse_conllu(f.readlines(), where=str(path))
    return require_content(sentences, path, "sentences")
