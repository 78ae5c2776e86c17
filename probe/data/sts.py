"""Sentence-similarity readers: STS Benchmark and SICK relatedness (SICK-R).

STS Benchmark files are tab-separated without a header: ``genre file year id score sentence1
sentence2``, and some rows carry two extra license/source fields. Lines are split on tabs by hand
(not with ``csv``) because the sentences contain unbalanced double quotes, and csv's quoting rules
would merge several lines into one field. SICK is one tab-separated file with a header; its
``SemEval_set`` column (TRAIN / TRIAL / TEST) selects the split, TRIAL serving as dev as in
SentEval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probe.data.registry import dataset_file, normalize_split, open_text, require_content
from probe.errors import DataError

__all__ = ["STSPair", "read_sick", "read_sts", "read_stsb"]

_SICK_SETS = {"train": "TRAIN", "dev": "TRIAL", "test": "TEST"}
_SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score", "SemEval_set")


@dataclass(frozen=True)
class STSPair:
    """A sentence pair with its gold similarity.

    Attributes
    ----------
    sentence1, sentence2 : str
    score : float
        0-5 for STS Benchmark, 1-5 for SICK relatedness.
    label : str or None
        SICK's entailment label (``ENTAILMENT``, ``NEUTRAL``, ``CONTRADICTION``); None for STS-B.
    """

    sentence1: str
    sentence2: str
    score: float
    label: str | None = None


def _score(text: str, where: str, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}:{lineno}: score {text!r} is not a number") from None


def read_stsb(path: str | Path) -> list[STSPair]:
    """Read one STS Benchmark split file (``sts-{train,dev,test}.csv``).

    Raises
    ------
    DataError
        Naming the file and line of a row with fewer than 7 tab-separated fields or a
        non-numeric score.
    """
    where = str(path)
    pairs: list[STSPair] = []
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 7:
                raise DataError(
                    f"{where}:{lineno}: expected at least 7 tab-separated fields "
                    f"(genre file year id score s1 s2), got {len(cols)}"
                )
            pairs.append(STSPair(cols[5], cols[6], _score(cols[4], where, lineno)))
    return require_content(pairs, path, "sentence pairs")


def read_sick(path: str | Path, split: str) -> list[STSPair]:
    """Read the SICK relatedness pairs of one split from ``SICK.txt``.

    Parameters
    ----------
    path : str or Path
        The full ``SICK.txt`` (12 columns with a header).
    split : str
        ``train``, ``dev`` (the TRIAL set) or ``test``.
    """
    where = str(path)
    split_n = normalize_split(split)
    if split_n not in _SICK_SETS:
        raise DataError(f"SICK has no split {split!r}; use train, dev (TRIAL) or test")
    wanted = _SICK_SETS[split_n]
    pairs: list[STSPair] = []
    with open_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        missing = [c for c in _SICK_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{where}:1: header lacks column(s) {', '.join(missing)}; is this SICK.txt?"
            )
        a, b, score, sset = (header.index(c) for c in _SICK_COLUMNS)
        entail = header.index("entailment_label") if "entailment_label" in header else None
        for lineno, raw in enumerate(f, start=2):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                raise DataError(
                    f"{where}:{lineno}: expected {len(header)} tab-separated fields, got "
                    f"{len(cols)}"
                )
            if cols[sset] == wanted:
                label = cols[entail] if entail is not None else None
                pairs.append(STSPair(cols[a], cols[b], _score(cols[score], where, lineno), label))
    return require_content(pairs, path, f"{wanted} pairs")


def read_sts(name: str, split: str) -> list[STSPair]:
    """Read a split of a registered STS dataset: ``stsbenchmark`` or ``sick``.

    Examples
    --------
    >>> pairs = read_sts("stsbenchmark", "dev")  # doctest: +SKIP
    >>> len(pairs)  # doctest: +SKIP
    1500
    """
    if name == "stsbenchmark":
        return read_stsb(dataset_file(name, split))
    if name == "sick":
        return read_sick(dataset_file(name, split), split)
    raise DataError(f"{name!r} is not an STS dataset; use 'stsbenchmark' or 'sick'")
