"""SemEval-2010 Task 8 reader (relation classification between two marked nominals).

Each example takes four lines: ``ID<TAB>"sentence with <e1>..</e1> and <e2>..</e2>"``, the label
(one of 19: nine relations in both directions, plus ``Other``), ``Comment: ...`` and a blank line.

The sentence is tokenized after removing the markup with the deterministic rule
``\\w+|[^\\w\\s]`` (runs of word characters, and every other non-space character on its own),
applied to the text before, inside and after each entity separately. Tokenizing the pieces
separately keeps the entity spans aligned to word indices even where the markup touches a word
(``doves<e2>moles</e2>`` gives ``doves``, ``moles``). The label set is fixed by the task, so a
label outside it is reported as a malformed file rather than silently accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from probe.data.registry import open_text, require_content
from probe.errors import DataError

__all__ = ["SEMEVAL_LABELS", "SemEvalExample", "read_semeval", "tokenize_simple"]

_RELATIONS = (
    "Cause-Effect",
    "Component-Whole",
    "Content-Container",
    "Entity-Destination",
    "Entity-Origin",
    "Instrument-Agency",
    "Member-Collection",
    "Message-Topic",
    "Product-Producer",
)
#: The 19 directed labels of the task, sorted.
SEMEVAL_LABELS: tuple[str, ...] = tuple(
    sorted([f"{r}({d})" for r in _RELATIONS for d in ("e1,e2", "e2,e1")] + ["Other"])
)
_LABEL_SET = frozenset(SEMEVAL_LABELS)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_HEADER = re.compile(r'(\d+)\t"(.*)"\s*')
_MARKUP = re.compile(r"<(/?)(e[12])>")


@dataclass(frozen=True)
class SemEvalExample:
    """One relation example.

    Attributes
    ----------
    id : str
        Example ID from the file (``1``..``8000`` train, ``8001``..``10717`` test).
    words : tuple of str
        Tokenized sentence (markup removed).
    e1, e2 : (int, int)
        Word spans ``(start, end_exclusive)`` of the two marked nominals.
    label : str
        Directed label, e.g. ``Component-Whole(e2,e1)``, or ``Other``.
    """

    id: str
    words: tuple[str, ...]
    e1: tuple[int, int]
    e2: tuple[int, int]
    label: str


def tokenize_simple(text: str) -> list[str]:
    """Split text into word-character runs and single punctuation characters.

    >>> tokenize_simple("Hello, world's end.")
    ['Hello', ',', 'world', "'", 's', 'end', '.']
    """
    return _TOKEN.findall(text)


def _parse_sentence(
    sentence: str, where: str, lineno: int
) -> tuple[tuple[str, ...], dict[str, tuple[int, int]]]:
    words: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    opened: dict[str, int] = {}
    pos = 0
    for m in _MARKUP.finditer(sentence):
        words.extend(tokenize_simple(sentence[pos : m.start()]))
        pos = m.end()
        closing, ent = m.group(1) == "/", m.group(2)
        if not closing and ent not in opened and ent not in spans:
            opened[ent] = len(words)
        elif closing and ent in opened:
            spans[ent] = (opened.pop(ent), len(words))
        else:
            raise DataError(f"{where}:{lineno}: unbalanced or repeated <{ent}> markup")
    words.extend(tokenize_simple(sentence[pos:]))
    if set(spans) != {"e1", "e2"} or opened:
        raise DataError(f"{where}:{lineno}: sentence must mark exactly one <e1> and one <e2>")
    for ent, (s, e) in spans.items():
        if e <= s:
            raise DataError(f"{where}:{lineno}: <{ent}> marks no word")
    return tuple(words), spans


def read_semeval(path: str | Path) -> list[SemEvalExample]:
    """Read a SemEval-2010 Task 8 file with labels (``TRAIN_FILE.TXT``, ``TEST_FILE_FULL.TXT``).

    Returns
    -------
    list of SemEvalExample
        In file order.

    Raises
    ------
    DataError
        Naming the file and line of a malformed example (bad header, markup or label, or a file
        without labels such as ``TEST_FILE_CLEAN.TXT``).
    """
    where = str(path)
    with open_text(path) as f:
        lines = [line.rstrip("\r\n") for line in f]
    examples: list[SemEvalExample] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        m = _HEADER.fullmatch(lines[i])
        if m is None:
            raise DataError(
                f'{where}:{i + 1}: expected an example header ID<TAB>"sentence", got '
                f"{lines[i][:60]!r}; is this a SemEval-2010 Task 8 file?"
            )
        words, spans = _parse_sentence(m.group(2), where, i + 1)
        label = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if label not in _LABEL_SET:
            raise DataError(
                f"{where}:{i + 2}: {label[:60]!r} is not one of the 19 SemEval-2010 Task 8 labels "
                "(a file without labels? use TEST_FILE_FULL.TXT for the test split)"
            )
        examples.append(SemEvalExample(m.group(1), words, spans["e1"], spans["e2"], label))
        i += 2
        # The comment line is optional in practice; skip it when present.
        if i < len(lines) and lines[i].startswith("Comment:"):
            i += 1
    return require_content(examples, path, "examples")
