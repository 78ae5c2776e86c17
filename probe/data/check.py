"""Read a dataset split before any model loads, so bad data fails in seconds, not after capture.

Validation calls :func:`check_split_readable` for every split a study will read. It parses the
file with the dataset's own reader, so undecodable bytes, a truncated gzip file, malformed lines
and an empty or comment-only file all fail here with ``FILE:LINE`` (see the readers). Task
datasets go through the readers' memo in :mod:`probe.data.tasks`, so the stage that loads them
afterwards does not parse them again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from probe.data.conllu import read_conllu
from probe.data.ner import read_conll2003, read_iob2
from probe.data.registry import dataset_file, dataset_info, normalize_split
from probe.data.semeval import read_semeval
from probe.data.sst2 import read_sst2
from probe.data.sts import read_sick, read_stsb
from probe.data.tasks import TASKS, _read
from probe.data.text import read_documents

__all__ = ["check_split_readable", "check_task_readable"]

_READERS: dict[str, Callable[[Path, str], object]] = {
    "ud_english_ewt": lambda path, split: _read(read_conllu, path),
    "uner_english_ewt": lambda path, split: _read(read_iob2, path),
    "conll2003_en": lambda path, split: _read(read_conll2003, path),
    "semeval2010_task8": lambda path, split: _read(read_semeval, path),
    "stsbenchmark": lambda path, split: read_stsb(path),
    "sick": read_sick,
    "sst2_glue": lambda path, split: read_sst2(path),
    "wikitext2": lambda path, split: read_documents(path),
}


def check_split_readable(dataset: str, split: str) -> Path:
    """Parse one split of a registered dataset; returns its file.

    Raises
    ------
    DataError
        The file is missing, not UTF-8, a truncated gzip file, malformed or empty.
    """
    path = dataset_file(dataset, split)
    _READERS[dataset](path, normalize_split(split))
    return path


def check_task_readable(task: str) -> None:
    """Parse the files a probing or fine-tuning task reads.

    SST-2 fine-tuning reads train and dev (GLUE's test split has no labels); a probing task reads
    every file its dataset registers.
    """
    if task == "sst2":
        for split in ("train", "dev"):
            check_split_readable("sst2_glue", split)
        return
    if task in ("sick_entailment", "stsb"):  # fine-tuning's sentence-pair tasks
        for split in ("train", "dev", "test"):
            check_split_readable("sick" if task == "sick_entailment" else "stsbenchmark", split)
        return
    dataset = TASKS[task].dataset
    for split in dataset_info(dataset).splits:
        check_split_readable(dataset, split)
