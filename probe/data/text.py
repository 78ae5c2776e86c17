"""Raw-text reader: documents of sentences, for MLM + NSP pretraining.

Two layouts are understood, chosen per file by :func:`read_documents` (``fmt="auto"``):

- **WikiText** (detected when the first non-blank line is a ``= Title =`` heading): an article
  starts at each level-1 heading ``" = Title = "``; section headings (``" = = Section = = "``)
  and blank lines are dropped; each remaining line is a paragraph, split into sentences after
  every standalone ``.``, ``?`` or ``!`` token (the text is tokenized, so a sentence end is the
  token surrounded by spaces; ``@.@`` inside numbers is not a boundary). This simple rule splits
  a few abbreviations wrongly (``H. gammarus`` is kept, since ``H.`` is not standalone, but
  ``St . Louis`` would split); for NSP that noise is harmless.
- **Plain lines** (any other file): one sentence per line; documents are separated by one or more
  blank lines.

A folder is read as every ``*.txt`` below it (recursively, sorted by path), documents in order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from probe.data.registry import DATASETS, dataset_file, open_text, require_content
from probe.errors import DataError

__all__ = ["Document", "read_documents", "split_wikitext_sentences"]

#: A document is a tuple of sentences (strings).
Document = tuple[str, ...]

_TITLE = re.compile(r"\s*=\s(?!=)(.*?)\s=\s*")
_SECTION = re.compile(r"\s*=(\s=)+\s.*")
_SENT_END = re.compile(r"(?<=\s[.?!])\s+|(?<=^[.?!])\s+")


def split_wikitext_sentences(paragraph: str) -> list[str]:
    """Split a tokenized WikiText paragraph after standalone ``.``, ``?`` and ``!`` tokens.

    >>> split_wikitext_sentences(" It is 3 @.@ 5 m long . It swims . ")
    ['It is 3 @.@ 5 m long .', 'It swims .']
    """
    return [s.strip() for s in _SENT_END.split(paragraph.strip()) if s.strip()]


def _is_wikitext(lines: list[str]) -> bool:
    for line in lines:
        if line.strip():
            return _TITLE.fullmatch(line) is not None
    return False


def _wikitext_documents(lines: list[str]) -> list[Document]:
    docs: list[Document] = []
    current: list[str] = []
    for line in lines:
        if _TITLE.fullmatch(line):
            if current:
                docs.append(tuple(current))
            current = []
        elif line.strip() and not _SECTION.fullmatch(line):
            current.extend(split_wikitext_sentences(line))
    if current:
        docs.append(tuple(current))
    return docs


def _line_documents(lines: list[str]) -> list[Document]:
    docs: list[Document] = []
    current: list[str] = []
    for line in lines:
        text = line.strip()
        if text:
            current.append(text)
        elif current:
            docs.append(tuple(current))
            current = []
    if current:
        docs.append(tuple(current))
    return docs


def _read_file(path: Path, fmt: str) -> list[Document]:
    with open_text(path) as f:
        lines = [line.rstrip("\r\n") for line in f]
    wiki = fmt == "wikitext" or (fmt == "auto" and _is_wikitext(lines))
    return _wikitext_documents(lines) if wiki else _line_documents(lines)


def read_documents(
    source: str | Path,
    *,
    split: str | None = None,
    fmt: Literal["auto", "wikitext", "lines"] = "auto",
) -> list[Document]:
    """Read raw text as documents, each a tuple of sentences.

    Parameters
    ----------
    source : str or Path
        A registered dataset name (e.g. ``wikitext2``), a text file (``.gz`` allowed) or a
        folder of ``*.txt`` files. An existing path wins over a dataset of the same name.
    split : str, optional
        For a dataset name: the split to read; all of the dataset's splits when None.
    fmt : {"auto", "wikitext", "lines"}
        Layout of each file; ``auto`` detects WikiText by its first line (module docstring).

    Returns
    -------
    list of Document
        Non-empty documents in order.

    Raises
    ------
    DataError
        The source does not exist, or a folder holds no ``*.txt`` file.
    """
    if fmt not in ("auto", "wikitext", "lines"):
        raise DataError(f"unknown text format {fmt!r}; use auto, wikitext or lines")
    path = Path(source)
    if not path.exists() and str(source) in DATASETS:
        info = DATASETS[str(source)]
        splits = [split] if split is not None else list(info.splits)
        files = list(dict.fromkeys(dataset_file(str(source), s) for s in splits))
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise DataError(f"folder {path} holds no .txt file; put one document file per .txt")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(
            f"text source {str(source)!r} is neither a file, a folder nor a dataset name "
            f"({', '.join(sorted(DATASETS))})"
        )
    docs: list[Document] = []
    for f in files:
        docs.extend(require_content(_read_file(f, fmt), f, "text"))
    return docs
