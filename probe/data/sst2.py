"""GLUE SST-2 reader (binary sentiment).

train/dev files are ``sentence<TAB>label`` (0 negative, 1 positive) with a header row; the test
file is ``index<TAB>sentence`` without labels. The header decides which layout a file has.
Sentences are lower-cased and PTB-tokenized upstream; only the trailing space is stripped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probe.data.registry import open_text, require_content
from probe.errors import DataError

__all__ = ["SST2Example", "read_sst2"]


@dataclass(frozen=True)
class SST2Example:
    """One SST-2 sentence (or phrase) and its label: 0, 1, or None for the unlabeled test set."""

    sentence: str
    label: int | None


def read_sst2(path: str | Path) -> list[SST2Example]:
    """Read an SST-2 ``.tsv`` file (labeled train/dev, or unlabeled test).

    Raises
    ------
    DataError
        Naming the file and line of an unknown header, wrong field count or a label not 0/1.
    """
    where = str(path)
    examples: list[SST2Example] = []
    with open_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if header == ["sentence", "label"]:
            labeled = True
        elif header == ["index", "sentence"]:
            labeled = False
        else:
            raise DataError(
                f"{where}:1: header {header!r} is neither 'sentence<TAB>label' nor "
                "'index<TAB>sentence'; is this a GLUE SST-2 file?"
            )
        for lineno, raw in enumerate(f, start=2):
            line = raw.rstrip("\r\n")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != 2:
                raise DataError(
                    f"{where}:{lineno}: expected 2 tab-separated fields, got {len(cols)}"
                )
            if labeled:
                if cols[1] not in ("0", "1"):
                    raise DataError(f"{where}:{lineno}: label {cols[1]!r} is not 0 or 1")
                examples.append(SST2Example(cols[0].strip(), int(cols[1])))
            else:
                examples.append(SST2Example(cols[1].strip(), None))
    return require_content(examples, path, "sentences")
