"""Bad data files fail when read, with FILE:LINE, before any model loads.

Each reader gets a valid file with one byte that is not UTF-8 on a known line, an empty file, a
comment-only file and a truncated gzip copy.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.data import (
    read_conll2003,
    read_conllu,
    read_documents,
    read_iob2,
    read_semeval,
    read_sick,
    read_sst2,
    read_stsb,
)
from probe.errors import DataError
from tests.conftest import run_cli

CONLLU = (
    "# sent_id = a\n"
    "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n"
    "2\tyou\tyou\tPRON\tPRP\t_\t1\tobj\t_\t_\n\n"
)
STSB = "".join(f"g\tf\t2012\t{i}\t4.0\tA a.\tB b.\n" for i in range(3))
SICK = "sentence_A\tsentence_B\trelatedness_score\tSemEval_set\n"

# reader, a valid file whose third line holds a word, and a file without any example in it
# (comments or a header only; None when the format has neither).
FORMATS: dict[str, tuple[Callable[[Path], object], str, str | None]] = {
    "conllu": (read_conllu, CONLLU, "# newdoc\n# sent_id = x\n\n"),
    "iob2": (read_iob2, "# sent_id = a\n1\tJo\tB-PER\t-\t-\n2\tran\tO\t-\t-\n\n", "# a\n\n"),
    "conll2003": (read_conll2003, "-DOCSTART- -X- -X- O\n\nJo NNP B-NP B-PER\n", "-DOCSTART- O\n"),
    "semeval": (read_semeval, '1\t"A <e1>b</e1> c <e2>d</e2>."\nOther\nComment: a\n\n', None),
    "stsb": (read_stsb, STSB, None),
    "sick": (lambda p: read_sick(p, "train"), SICK + "A\tB\t4\tTRAIN\nC\tD\t1\tTRAIN\n", SICK),
    "sst2": (read_sst2, "sentence\tlabel\ngood\t1\nbad film\t0\n", "sentence\tlabel\n"),
    "text": (read_documents, "One sentence here.\nAnother one.\nA third line.\n", "\n\n"),
}  # fmt: skip


def _with_bad_byte_on_line_3(text: str) -> bytes:
    lines = text.encode().split(b"\n")
    lines[2] = lines[2][:3] + b"\xff" + lines[2][3:]
    return b"\n".join(lines)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_byte_that_is_not_utf8_is_reported_with_file_and_line(fmt: str, tmp_path: Path) -> None:
    reader, text, _ = FORMATS[fmt]
    path = tmp_path / "data.txt"
    path.write_text(text)
    reader(path)  # the file is valid before the byte goes in
    path.write_bytes(_with_bad_byte_on_line_3(text))
    with pytest.raises(DataError, match=rf"^{path}:3: byte 0xff \(column 4\) is not UTF-8"):
        reader(path)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_empty_file_is_an_error_naming_it(fmt: str, tmp_path: Path) -> None:
    reader, _, comments = FORMATS[fmt]
    path = tmp_path / "data.txt"
    path.write_text("")
    with pytest.raises(DataError, match=rf"^{path}:1: "):  # "no sentences", or a missing header
        reader(path)
    if comments is not None:
        path.write_text(comments)
        n_lines = comments.count("\n")
        with pytest.raises(DataError, match=rf"^{path}:{n_lines}: no .* \(it is empty or holds"):
            reader(path)


def test_a_truncated_gzip_file_is_a_data_error_not_an_eof(tmp_path: Path) -> None:
    path = tmp_path / "en_ewt-ud-train.conllu.gz"
    path.write_bytes(gzip.compress((CONLLU * 200).encode())[:-40])
    with pytest.raises(DataError, match=rf"^{path}: truncated or corrupt gzip file"):
        read_conllu(path)


@pytest.fixture
def ud_copy(data_dir: Path, tmp_path: Path) -> Path:
    """A data folder with UD EWT dev/test copied and a small train file."""
    root = tmp_path / "data"
    ud = root / "ud_english_ewt"
    ud.mkdir(parents=True)
    for split in ("dev", "test"):
        (ud / f"en_ewt-ud-{split}.conllu").write_bytes(
            (data_dir / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu").read_bytes()
        )
    (ud / "en_ewt-ud-train.conllu").write_text(CONLLU * 50)
    return root


def _study(tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text("name: bad_data\nmodels: [embedded:minilm]\nprobe: {tasks: [upos]}\n")
    return path


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("bad byte", "en_ewt-ud-dev.conllu:3: byte 0xff"),
        ("comment only", "en_ewt-ud-dev.conllu:2: no sentences"),
        ("truncated gzip", "en_ewt-ud-train.conllu.gz: truncated or corrupt gzip"),
    ],
)
def test_bad_data_stops_probe_run_before_any_model_loads(
    ud_copy: Path, tmp_path: Path, damage: str, needle: str
) -> None:
    ud = ud_copy / "ud_english_ewt"
    dev = ud / "en_ewt-ud-dev.conllu"
    if damage == "bad byte":
        dev.write_bytes(_with_bad_byte_on_line_3(dev.read_text()))
    elif damage == "comment only":
        dev.write_text("# newdoc id = x\n# sent_id = y\n")
    else:
        (ud / "en_ewt-ud-train.conllu").unlink()
        (ud / "en_ewt-ud-train.conllu.gz").write_bytes(gzip.compress(CONLLU.encode() * 50)[:-30])
    start = time.perf_counter()
    result = run_cli(
        "run",
        str(_study(tmp_path)),
        "--runs-dir",
        str(tmp_path / "runs"),
        env={"PROBE_DATA_DIR": str(ud_copy), "PROBE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and needle in line
    assert not (tmp_path / "runs").exists()  # stopped before a run folder or model existed
    assert time.perf_counter() - start < 60
