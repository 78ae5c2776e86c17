"""Probing tasks from the user's own files (see :mod:`probe.data.sources` for the schema).

A :class:`~probe.data.sources.FileTask` becomes the same :class:`~probe.data.tasks.TaskData` as a
built-in task, through the same :func:`~probe.data.tasks.assemble_task`, so probes, control tasks,
metrics, tables and figures treat both alike. What each format gives:

==============  =====================  ======================================================
format          kind                   targets
==============  =====================  ======================================================
conllu          word                   ``upos``, ``xpos``, ``feats.<F>`` (words that have F)
conllu          pair                   ``deprel`` (dependent, head), root arcs skipped;
                                       ``arcs``: each (dependent, head) is ``arc``, and one
                                       (dependent, random other word) per arc is ``no_arc``
iob2            span                   one target per entity span, labelled with its type
edge_probing    span or pair           one target per ``targets`` entry
tsv / jsonl     span                   the whole sentence, labelled with the label column
==============  =====================  ======================================================

Missing splits are carved out of train (10% for each missing one), or, without a train file,
train and a missing test out of dev (train 80%); the parts keep file order and are seeded by the
study's seed, like the built-in tasks that lack a split.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from probe.data.conllu import UDSentence, parse_feats, read_conllu
from probe.data.edge_probing import EdgeSentence, read_edge_probing
from probe.data.examples import missing_hint
from probe.data.ner import NERSentence, iob2_spans, read_tagged
from probe.data.sources import FileTask, PairFile
from probe.data.sts import STSPair
from probe.data.tabular import SentenceLabel, read_sentence_labels, read_sentence_pairs
from probe.data.tasks import (
    SPLITS,
    TaskData,
    TaskKind,
    _cap,
    _check_limit,
    _RawSplit,
    _read,
    assemble_task,
    load_task,
)
from probe.errors import DataError

__all__ = ["load_file_task", "load_pair_file", "load_probe_task", "read_file_task", "task_files"]

_HELD_FRACTION = 0.1  # of train, for each split carved out of it
_TRAIN_FROM_DEV = 0.8  # without a train file, as for UNER
_SPLIT_WORDS = {
    "train": ("train", "training"),
    "dev": ("dev", "development", "valid", "validation", "val", "trial"),
    "test": ("test", "testing"),
}
_SUFFIXES = {
    "conllu": (".conllu",),
    "iob2": (".iob2", ".iob", ".bio", ".conll", ".txt", ".tsv"),
    "edge_probing": (".json", ".jsonl"),
    "tsv": (".tsv", ".txt"),
    "jsonl": (".jsonl", ".json"),
}


# --------------------------------------------------------------------------- files


def _split_of(name: str) -> str | None:
    words = set(re.split(r"[^a-z0-9]+", name.lower()))
    found = [split for split, spellings in _SPLIT_WORDS.items() if words & set(spellings)]
    return found[0] if len(found) == 1 else None


def task_files(task: FileTask | PairFile) -> dict[str, Path]:
    """The file of each split the task's source has (one to three of train, dev, test).

    Raises
    ------
    DataError
        A file or folder that does not exist, a folder without recognisable split files, or two
        files claiming the same split.
    """
    if task.path is None:
        files = {s: Path(getattr(task, s)) for s in SPLITS if getattr(task, s) is not None}
    else:
        root = Path(task.path)
        if root.is_file():
            return {"train": root}
        if not root.is_dir():
            raise DataError(f"task {task.name!r}: path {root} does not exist{missing_hint(root)}")
        suffixes = _SUFFIXES[task.format]
        files = {}
        for candidate in sorted(root.iterdir()):
            name = candidate.name.removesuffix(".gz")
            split = _split_of(name) if name.endswith(suffixes) else None
            if split is None or not candidate.is_file():
                continue
            if split in files:
                raise DataError(
                    f"task {task.name!r}: both {files[split].name} and {candidate.name} in {root} "
                    f"look like the {split} split; name the files with train:/dev:/test:"
                )
            files[split] = candidate
        if not files:
            raise DataError(
                f"task {task.name!r}: no {'/'.join(suffixes)} file with train, dev or test in "
                f"its name in {root}; name the files with train:/dev:/test:"
            )
    for split, path in files.items():
        if not path.is_file():
            raise DataError(
                f"task {task.name!r}: {split} file {path} does not exist{missing_hint(path)}"
            )
    return files


def _reader(task: FileTask) -> Callable[[Path], list[Any]]:
    if task.format == "conllu":
        return read_conllu
    if task.format == "iob2":
        return read_tagged
    if task.format == "edge_probing":
        return read_edge_probing
    text, label, jsonl = task.text, task.label_column, task.format == "jsonl"

    def read_table(path: Path) -> list[SentenceLabel]:
        return read_sentence_labels(path, text=text, label=label, jsonl=jsonl)

    return read_table


def read_file_task(task: FileTask) -> dict[str, tuple[Path, Sequence[Any]]]:
    """Parse every file of the task (validating it); split -> (file, records in file order)."""
    reader = _reader(task)
    out = {}
    for split, path in task_files(task).items():
        # The module-level readers are parsed once per file (tasks._read caches on the reader);
        # a table reader is a closure over its columns, so it reads directly.
        tabular = task.format in ("tsv", "jsonl")
        records = tuple(reader(path)) if tabular else _read(reader, path)
        if not records:
            raise DataError(f"{path}: no examples in the {split} file of task {task.name!r}")
        out[split] = (path, records)
    return out


# --------------------------------------------------------------------------- splits


def _partition(n: int, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """``range(n)`` cut into parts of the given fractions plus one part with the rest, seeded;
    every part keeps file order."""
    perm = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for fraction in fractions:
        size = round(fraction * n)
        parts.append(sorted(perm[start : start + size].tolist()))
        start += size
    parts.append(sorted(perm[start:].tolist()))
    return parts


def _form_splits(
    files: dict[str, tuple[Path, Sequence[Any]]],
    seed: int,
    sources: Sequence[str] = ("train", "dev"),
) -> tuple[dict[str, tuple[Path, Sequence[Any]]], str]:
    """Carve the missing splits out of the first of ``sources`` present (see module doc)."""
    present = [s for s in SPLITS if s in files]
    missing = [s for s in SPLITS if s not in files]
    if not missing:
        return dict(files), "train/dev/test files"
    source = next((s for s in sources if s in files), None)
    if source is None:
        raise DataError(
            f"only a {present[0]} file was found; give a train file (dev and test can be "
            "carved out of it)"
        )
    path, records = files[source]
    if source == "train":  # each missing split takes 10% of train
        names = [*missing, "train"]
        fractions = [_HELD_FRACTION] * len(missing)
    else:  # no train file: train 80% (and 10% for another missing split), as for UNER
        others = [s for s in missing if s != "train"]
        names = ["train", *others, source]
        fractions = [_TRAIN_FROM_DEV] + [(1 - _TRAIN_FROM_DEV) / 2] * len(others)
    parts = _partition(len(records), fractions, seed)
    out = {s: files[s] for s in present if s != source}
    for name, part in zip(names, parts, strict=True):
        out[name] = (path, [records[i] for i in part])
    if any(not out[s][1] for s in SPLITS):
        empty = [s for s in SPLITS if not out[s][1]]
        raise DataError(
            f"{path}: {len(records)} examples are too few to carve out {', '.join(empty)}; "
            "add examples or give those split files"
        )
    carved = [s for s in SPLITS if s in names]
    sizes = ", ".join(f"{s} {len(out[s][1])}" for s in carved)
    note = (
        f"no {'/'.join(missing)} file: {', '.join(carved)} are a seeded "
        f"(seed={seed}) split of {path.name} ({sizes} examples)"
    )
    return out, note


# --------------------------------------------------------------------------- targets


def _conllu_split(
    sents: Sequence[UDSentence], label: str, source: Path, rng: np.random.Generator
) -> _RawSplit:
    rows: list[tuple[int, ...]] = []
    labels: list[str] = []
    feature = label.removeprefix("feats.") if label.startswith("feats.") else None
    for si, s in enumerate(sents):
        if label in ("deprel", "arcs"):
            n = len(s.words)
            for i, (head, rel) in enumerate(zip(s.heads, s.deprels, strict=True)):
                if head == 0:
                    continue  # the root arc has no head word to pool
                rows.append((si, i, i + 1, head - 1, head))
                labels.append(rel if label == "deprel" else "arc")
                if label == "arcs" and n > 2:
                    # A uniform draw among the n - 2 words that are neither i nor its head.
                    j = int(rng.integers(n - 2))
                    for taken in sorted((i, head - 1)):
                        j += j >= taken
                    rows.append((si, i, i + 1, j, j + 1))
                    labels.append("no_arc")
        elif feature is not None:
            for i, feats in enumerate(s.feats):
                value = parse_feats(feats).get(feature)
                if value is not None:
                    rows.append((si, i, i + 1))
                    labels.append(value)
        else:
            tags = s.upos if label == "upos" else s.xpos
            rows.extend((si, i, i + 1) for i in range(len(tags)))
            labels.extend(tags)
    return _RawSplit(tuple(s.words for s in sents), rows, labels, source)


def _tagged_split(sents: Sequence[NERSentence], source: Path) -> _RawSplit:
    rows: list[tuple[int, ...]] = []
    labels: list[str] = []
    for si, s in enumerate(sents):
        for start, end, typ in iob2_spans(s.tags):
            rows.append((si, start, end))
            labels.append(typ)
    return _RawSplit(tuple(s.words for s in sents), rows, labels, source)


def _edge_split(sents: Sequence[EdgeSentence], source: Path) -> _RawSplit:
    rows: list[tuple[int, ...]] = []
    labels: list[str] = []
    for si, s in enumerate(sents):
        for t in s.targets:
            rows.append((si, *t.span1, *t.span2) if t.span2 is not None else (si, *t.span1))
            labels.append(t.label)
    return _RawSplit(tuple(s.words for s in sents), rows, labels, source)


def _sentence_split(examples: Sequence[SentenceLabel], source: Path) -> _RawSplit:
    # A sentence label is a span over the whole sentence: pooled by probe.span.repr.
    rows = [(i, 0, len(ex.words)) for i, ex in enumerate(examples)]
    labels = [ex.label for ex in examples]
    return _RawSplit(tuple(ex.words for ex in examples), rows, labels, source)


def _kind(task: FileTask, splits: dict[str, tuple[Path, Sequence[Any]]]) -> TaskKind:
    if task.format == "conllu":
        return "pair" if task.label in ("deprel", "arcs") else "word"
    if task.format != "edge_probing":
        return "span"
    kinds = {}
    for split, (path, sents) in splits.items():
        first = next((t for s in sents for t in s.targets), None)
        if first is not None:
            kinds[split] = ("pair" if first.span2 is not None else "span", path)
    if len({k for k, _ in kinds.values()}) > 1:
        shown = ", ".join(f"{path.name}: {k}" for k, path in kinds.values())
        raise DataError(
            f"task {task.name!r}: files disagree on span2 ({shown}); one task, one kind"
        )
    return next(iter(kinds.values()))[0] if kinds else "span"


def load_file_task(
    task: FileTask, *, limit: dict[str, int | None] | None = None, seed: int = 0
) -> TaskData:
    """Read a file task into :class:`TaskData` (see the module docstring for what each format
    gives).

    Parameters
    ----------
    task : FileTask
    limit : dict of str to int or None, optional
        Keep only the first N sentences of a split (after missing splits are carved).
    seed : int
        Seeds the carving of missing splits and the negatives of ``arcs``.

    Raises
    ------
    DataError
        Missing or malformed files (file name, line and what was expected), or a split left
        without targets.
    """
    limits = _check_limit(limit)
    try:
        splits, note = _form_splits(read_file_task(task), seed)
    except DataError as exc:
        message = str(exc)
        prefix = f"task {task.name!r}"
        raise DataError(message if message.startswith(prefix) else f"{prefix}: {message}") from None
    kind = _kind(task, splits)
    raw = {}
    for index, split in enumerate(SPLITS):
        path, records = splits[split]
        records = _cap(records, limits[split])
        if task.format == "conllu":
            rng = np.random.default_rng([seed, index])
            raw[split] = _conllu_split(records, str(task.label), path, rng)
        elif task.format == "iob2":
            raw[split] = _tagged_split(records, path)
        elif task.format == "edge_probing":
            raw[split] = _edge_split(records, path)
        else:
            raw[split] = _sentence_split(records, path)
        if not raw[split].labels:
            raise DataError(
                f"task {task.name!r}: the {split} split ({path}) has no targets"
                + (f" with {task.label}" if task.format == "conllu" else "")
            )
    return assemble_task(task.name, str(task.path or task.train), kind, raw, note)


def load_probe_task(
    task: str | FileTask, *, limit: dict[str, int | None] | None = None, seed: int = 0
) -> TaskData:
    """A task of ``probe.tasks``: a built-in name (:func:`~probe.data.tasks.load_task`) or a
    :class:`FileTask`."""
    if isinstance(task, FileTask):
        return load_file_task(task, limit=limit, seed=seed)
    return load_task(task, limit=limit, seed=seed)


def load_pair_file(pairs: PairFile, *, seed: int = 0) -> tuple[dict[str, list[STSPair]], str]:
    """The scored sentence pairs of each split (missing splits carved, seeded) and a note.

    A single file is all the data; any one split file is enough (STS needs no training, so a
    test file alone is carved into train/dev/test too).
    """
    files = {}
    for split, path in task_files(pairs).items():
        records = read_sentence_pairs(
            path, text1=pairs.text1, text2=pairs.text2, score=pairs.score,
            jsonl=pairs.format == "jsonl",
        )  # fmt: skip
        if not records:
            raise DataError(f"{path}: no pairs in the {split} file of {pairs.name!r}")
        files[split] = (path, records)
    try:
        splits, note = _form_splits(files, seed, sources=("train", "dev", "test"))
    except DataError as exc:
        raise DataError(f"pairs {pairs.name!r}: {exc}") from None
    return {s: list(records) for s, (_, records) in splits.items()}, note
