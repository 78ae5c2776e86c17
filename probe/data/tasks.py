"""Probing tasks: labelled words, spans and span pairs over sentences, in one uniform shape.

Every task becomes a :class:`TaskData` with ``train``/``dev``/``test`` :class:`TaskSplit`\\ s. A
split holds the sentences (words) and one row per target: the sentence index followed by one or
two ``(start, end_exclusive)`` word spans. The capture stage pools subword activations over those
spans; the probes read the labels.

Conventions that other stages rely on:

- ``sentences`` are *all* sentences of the data file in file order (after ``limit``), including
  those without any target, so tasks on the same file and split (``upos``, ``xpos``, ``deprel``)
  yield identical ``sentences`` and share one activation cache entry.
- ``limit[split] = N`` keeps the first N sentences of that split (deterministic, CPU-sized runs).
- ``label_names`` are the labels of the train split, sorted; labels that occur only in dev/test
  are appended after them (sorted), so train label indices do not depend on dev/test, and a
  probe, never having seen them, counts them as errors (``note`` lists them). Dropping them
  instead would inflate dev/test accuracy.
- Where a dataset lacks a split, it is carved out of another one with ``seed`` and ``note`` says
  how (UNER has no train file; SemEval has no dev file).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from probe.data.conllu import UDSentence, read_conllu
from probe.data.ner import NERSentence, iob2_spans, read_conll2003, read_iob2
from probe.data.registry import dataset_file, normalize_split
from probe.data.semeval import SemEvalExample, read_semeval
from probe.errors import DataError

__all__ = [
    "SPLITS",
    "TASKS",
    "TaskData",
    "TaskKind",
    "TaskSpec",
    "TaskSplit",
    "assemble_task",
    "load_task",
    "word_types",
]

TaskKind = Literal["word", "span", "pair"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
_N_SPANS = {"word": 1, "span": 1, "pair": 2}
_UNER_DEV_FRACTION = 0.2
_SEMEVAL_DEV_FRACTION = 0.1

T = TypeVar("T")


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its name, the dataset it reads, its kind, and one line of description."""

    name: str
    dataset: str
    kind: TaskKind
    description: str


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("upos", "ud_english_ewt", "word", "universal part of speech of each word (17)"),
        TaskSpec("xpos", "ud_english_ewt", "word", "Penn Treebank part of speech of each word"),
        TaskSpec(
            "deprel",
            "ud_english_ewt",
            "pair",
            "dependency relation (with subtype) of each (dependent, head) arc; root arcs skipped",
        ),
        TaskSpec("ner_conll2003", "conll2003_en", "span", "type of each gold entity span (4)"),
        TaskSpec("ner_uner", "uner_english_ewt", "span", "type of each gold entity span (3)"),
        TaskSpec(
            "semeval_relations",
            "semeval2010_task8",
            "pair",
            "directed relation between the two marked nominals (19)",
        ),
    ]
}


# eq=False: comparing numpy arrays elementwise has no truth value; identity is the useful
# equality here.
@dataclass(frozen=True, eq=False)
class TaskSplit:
    """One split of a probing task.

    Attributes
    ----------
    sentences : tuple of tuple of str
        Words of each sentence, ``n_sentences`` of them.
    targets : np.ndarray of int64, shape (n_targets, 1 + 2 * n_spans)
        Sentence index, then ``(start, end_exclusive)`` word spans: one span for word and span
        tasks (a word task has ``end = start + 1``), two for pair tasks. Read-only.
    labels : np.ndarray of int64, shape (n_targets,)
        Index into :attr:`TaskData.label_names`. Read-only.
    source : Path
        The data file the split was read from (for the activation cache key).
    """

    sentences: tuple[tuple[str, ...], ...]
    targets: np.ndarray
    labels: np.ndarray
    source: Path


@dataclass(frozen=True, eq=False)
class TaskData:
    """A probing task with its three splits.

    Attributes
    ----------
    name, dataset : str
        Task name (a key of :data:`TASKS`) and registered dataset name.
    kind : {"word", "span", "pair"}
    label_names : tuple of str
        Train labels sorted, then labels seen only in dev/test (sorted).
    splits : dict of str to TaskSplit
        ``train``, ``dev`` and ``test``.
    note : str
        How splits were formed and which labels are absent from train.
    """

    name: str
    dataset: str
    kind: TaskKind
    label_names: tuple[str, ...]
    splits: dict[str, TaskSplit]
    note: str


@dataclass
class _RawSplit:
    sentences: tuple[tuple[str, ...], ...]
    rows: list[tuple[int, ...]]
    labels: list[str]
    source: Path


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=12)
def _read_cached(reader: Callable[[Path], list[T]], path: Path, _mtime_ns: int, _size: int):
    # Parsing UD EWT train takes about a second; upos/xpos/deprel in one study, and validation
    # before them (probe.data.check), read it once.
    # Readers return frozen dataclasses, so sharing the parsed tuple is safe.
    return tuple(reader(path))


def _read(reader: Callable[[Path], list[T]], path: Path) -> tuple[T, ...]:
    st = path.stat()
    return _read_cached(reader, path.resolve(), st.st_mtime_ns, st.st_size)


def _check_limit(limit: Mapping[str, int | None] | None) -> dict[str, int | None]:
    out: dict[str, int | None] = dict.fromkeys(SPLITS)
    for key, value in (limit or {}).items():
        split = normalize_split(str(key))
        if split not in SPLITS:
            raise DataError(f"limit names unknown split {key!r}; use train, dev or test")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0
        ):
            raise DataError(
                f"limit for split {key!r} must be a non-negative integer or None, got {value!r}"
            )
        out[split] = None if value is None else int(value)
    return out


def _seeded_partition(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into (rest, held_out) with ``round(fraction * n)`` held out.

    Both parts keep file order, so ``limit`` (first N) stays meaningful.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_out = round(fraction * n)
    held = sorted(perm[:n_out].tolist())
    rest = sorted(perm[n_out:].tolist())
    return rest, held


def _cap(items: Sequence[T], n: int | None) -> Sequence[T]:
    return items if n is None else items[:n]


# ----------------------------------------------------------------------------- per dataset


def _ud_split(task: str, split: str, limit: int | None) -> _RawSplit:
    path = dataset_file("ud_english_ewt", split)
    sents: Sequence[UDSentence] = _cap(_read(read_conllu, path), limit)
    rows: list[tuple[int, ...]] = []
    labels: list[str] = []
    for si, s in enumerate(sents):
        if task == "deprel":
            for i, (head, rel) in enumerate(zip(s.heads, s.deprels, strict=True)):
                if head == 0:
                    continue  # the root arc has no head word to pool
                rows.append((si, i, i + 1, head - 1, head))
                labels.append(rel)
        else:
            tags = s.upos if task == "upos" else s.xpos
            rows.extend((si, i, i + 1) for i in range(len(tags)))
            labels.extend(tags)
    return _RawSplit(tuple(s.words for s in sents), rows, labels, path)


def _ner_split(sents: Sequence[NERSentence], source: Path) -> _RawSplit:
    rows: list[tuple[int, ...]] = []
    labels: list[str] = []
    for si, s in enumerate(sents):
        for start, end, typ in iob2_spans(s.tags):
            rows.append((si, start, end))
            labels.append(typ)
    return _RawSplit(tuple(s.words for s in sents), rows, labels, source)


def _semeval_split(examples: Sequence[SemEvalExample], source: Path) -> _RawSplit:
    rows = [(i, *ex.e1, *ex.e2) for i, ex in enumerate(examples)]
    return _RawSplit(
        tuple(ex.words for ex in examples), rows, [ex.label for ex in examples], source
    )


def _build_raw(
    name: str, limits: dict[str, int | None], seed: int
) -> tuple[dict[str, _RawSplit], str]:
    if name in ("upos", "xpos", "deprel"):
        raw = {split: _ud_split(name, split, limits[split]) for split in SPLITS}
        return raw, "UD English EWT r2.16 train/dev/test files"
    if name == "ner_conll2003":
        raw = {}
        for split in SPLITS:
            path = dataset_file("conll2003_en", split)
            raw[split] = _ner_split(_cap(_read(read_conll2003, path), limits[split]), path)
        return raw, "CoNLL-2003 train/valid/test files (valid = dev)"
    if name == "ner_uner":
        dev_path = dataset_file("uner_english_ewt", "dev")
        test_path = dataset_file("uner_english_ewt", "test")
        dev_sents = _read(read_iob2, dev_path)
        rest, held = _seeded_partition(len(dev_sents), _UNER_DEV_FRACTION, seed)
        raw = {
            "train": _ner_split(_cap([dev_sents[i] for i in rest], limits["train"]), dev_path),
            "dev": _ner_split(_cap([dev_sents[i] for i in held], limits["dev"]), dev_path),
            "test": _ner_split(_cap(_read(read_iob2, test_path), limits["test"]), test_path),
        }
        note = (
            f"UNER English EWT has no train file here: train/dev are a seeded (seed={seed}) "
            f"{1 - _UNER_DEV_FRACTION:.0%}/{_UNER_DEV_FRACTION:.0%} split by sentence of the UNER "
            f"dev file ({len(rest)}/{len(held)} sentences); test is the UNER test file"
        )
        return raw, note
    if name == "semeval_relations":
        train_path = dataset_file("semeval2010_task8", "train")
        test_path = dataset_file("semeval2010_task8", "test")
        train_ex = _read(read_semeval, train_path)
        rest, held = _seeded_partition(len(train_ex), _SEMEVAL_DEV_FRACTION, seed)
        raw = {
            "train": _semeval_split(_cap([train_ex[i] for i in rest], limits["train"]), train_path),
            "dev": _semeval_split(_cap([train_ex[i] for i in held], limits["dev"]), train_path),
            "test": _semeval_split(_cap(_read(read_semeval, test_path), limits["test"]), test_path),
        }
        note = (
            f"SemEval-2010 Task 8 has no dev file: train/dev are a seeded (seed={seed}) "
            f"{1 - _SEMEVAL_DEV_FRACTION:.0%}/{_SEMEVAL_DEV_FRACTION:.0%} split of TRAIN_FILE "
            f"({len(rest)}/{len(held)} examples); test is TEST_FILE_FULL; the official metric "
            "is macro-F1 over the 18 directed relations excluding Other"
        )
        return raw, note
    raise AssertionError(f"task {name!r} is in TASKS but has no builder")  # programming error


# ----------------------------------------------------------------------------- public API


def load_task(
    name: str, *, limit: Mapping[str, int | None] | None = None, seed: int = 0
) -> TaskData:
    """Load a probing task as labelled targets over sentences.

    Parameters
    ----------
    name : str
        A key of :data:`TASKS`: ``upos``, ``xpos``, ``deprel``, ``ner_conll2003``, ``ner_uner``,
        ``semeval_relations``.
    limit : dict of str to int or None, optional
        Keep only the first N sentences of a split (``{"train": 2000, "dev": 500}``); missing
        splits and None mean all.
    seed : int
        Seeds the partition of a split carved out of another (``ner_uner``,
        ``semeval_relations``); other tasks ignore it.

    Returns
    -------
    TaskData

    Raises
    ------
    DataError
        Unknown task (with the nearest name), bad ``limit``, or missing/malformed data files.

    Examples
    --------
    >>> task = load_task("upos", limit={"train": 10, "dev": 5, "test": 5})  # doctest: +SKIP
    >>> task.splits["train"].targets.shape[1]  # doctest: +SKIP
    3
    """
    if name not in TASKS:
        near = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(TASKS)}"
        raise DataError(f"unknown task {name!r}; {hint}")
    spec = TASKS[name]
    raw, note = _build_raw(name, _check_limit(limit), seed)
    return assemble_task(name, spec.dataset, spec.kind, raw, note)


def assemble_task(
    name: str, dataset: str, kind: TaskKind, raw: Mapping[str, _RawSplit], note: str
) -> TaskData:
    """Index labels (train labels sorted, then dev/test-only ones) and freeze the splits.

    Every task, built-in or read from a user's files, goes through here, so label indices and
    the note on labels unseen in train mean the same thing everywhere.
    """
    train_labels = sorted(set(raw["train"].labels))
    unseen = sorted(set().union(*(raw[s].labels for s in SPLITS)) - set(train_labels))
    label_names = tuple(train_labels + unseen)
    index = {lab: i for i, lab in enumerate(label_names)}
    if unseen:
        shown = ", ".join(unseen[:10]) + (", ..." if len(unseen) > 10 else "")
        note += f"; {len(unseen)} label(s) occur only in dev/test and count as errors: {shown}"

    width = 1 + 2 * _N_SPANS[kind]
    splits: dict[str, TaskSplit] = {}
    for split in SPLITS:
        r = raw[split]
        targets = np.asarray(r.rows, dtype=np.int64).reshape(len(r.rows), width)
        labels = np.fromiter((index[lab] for lab in r.labels), dtype=np.int64, count=len(r.labels))
        targets.flags.writeable = False
        labels.flags.writeable = False
        splits[split] = TaskSplit(r.sentences, targets, labels, r.source)
    return TaskData(name, dataset, kind, label_names, splits, note)


def word_types(split: TaskSplit) -> list[str | tuple]:
    """Return the word type(s) of each target, for type-level control tasks.

    A one-word span gives its word string, a longer span the tuple of its words, and a pair
    target the tuple of both spans' types. The result is hashable per target, so a control task
    can assign one random label per type.

    Parameters
    ----------
    split : TaskSplit

    Returns
    -------
    list, of length n_targets

    Examples
    --------
    >>> import numpy as np
    >>> s = TaskSplit((("New", "York", "is", "big"),),
    ...               np.array([[0, 0, 2, 3, 4], [0, 2, 3, 0, 1]]), np.zeros(2, int), Path("x"))
    >>> word_types(s)
    [(('New', 'York'), 'big'), ('is', 'New')]
    """

    def span_type(words: tuple[str, ...], start: int, end: int) -> str | tuple[str, ...]:
        return words[start] if end - start == 1 else words[start:end]

    out: list[str | tuple] = []
    n_spans = (split.targets.shape[1] - 1) // 2
    for row in split.targets.tolist():
        words = split.sentences[row[0]]
        types = tuple(span_type(words, row[1 + 2 * k], row[2 + 2 * k]) for k in range(n_spans))
        out.append(types[0] if n_spans == 1 else types)
    return out
