"""Data layer: the dataset registry, one reader per format, and probing tasks.

Readers take a file path and return frozen dataclasses (tuples, not lists); malformed input
raises :class:`probe.errors.DataError` naming the file and line. :func:`dataset_file` resolves a
registered dataset name and split to a local file (``$PROBE_DATA_DIR`` first, then a checksummed
download into the user cache), and :func:`load_task` turns a dataset into probing targets.
"""

from probe.data.conllu import UDSentence, parse_conllu, parse_feats, read_conllu
from probe.data.edge_probing import EdgeSentence, EdgeTarget, read_edge_probing
from probe.data.file_tasks import (
    load_file_task,
    load_pair_file,
    load_probe_task,
    read_file_task,
    task_files,
)
from probe.data.ner import NERSentence, iob2_spans, read_conll2003, read_iob2, read_ner, read_tagged
from probe.data.registry import (
    DATASETS,
    DataFile,
    DatasetInfo,
    cache_dir,
    dataset_dir,
    dataset_file,
    dataset_info,
    download_file,
    file_sha256,
    normalize_split,
    open_text,
)
from probe.data.semeval import SEMEVAL_LABELS, SemEvalExample, read_semeval, tokenize_simple
from probe.data.sources import FileTask, PairFile
from probe.data.sst2 import SST2Example, read_sst2
from probe.data.sts import STSPair, read_sick, read_sts, read_stsb
from probe.data.tabular import SentenceLabel, read_sentence_labels, read_sentence_pairs
from probe.data.tasks import (
    SPLITS,
    TASKS,
    TaskData,
    TaskKind,
    TaskSpec,
    TaskSplit,
    assemble_task,
    load_task,
    word_types,
)
from probe.data.text import Document, read_documents, split_wikitext_sentences

__all__ = [
    "DATASETS",
    "SEMEVAL_LABELS",
    "SPLITS",
    "TASKS",
    "DataFile",
    "DatasetInfo",
    "Document",
    "EdgeSentence",
    "EdgeTarget",
    "FileTask",
    "NERSentence",
    "PairFile",
    "SST2Example",
    "STSPair",
    "SemEvalExample",
    "SentenceLabel",
    "TaskData",
    "TaskKind",
    "TaskSpec",
    "TaskSplit",
    "UDSentence",
    "assemble_task",
    "cache_dir",
    "dataset_dir",
    "dataset_file",
    "dataset_info",
    "download_file",
    "file_sha256",
    "iob2_spans",
    "load_file_task",
    "load_pair_file",
    "load_probe_task",
    "load_task",
    "normalize_split",
    "open_text",
    "parse_conllu",
    "parse_feats",
    "read_conll2003",
    "read_conllu",
    "read_documents",
    "read_edge_probing",
    "read_file_task",
    "read_iob2",
    "read_ner",
    "read_semeval",
    "read_sentence_labels",
    "read_sentence_pairs",
    "read_sick",
    "read_sst2",
    "read_sts",
    "read_stsb",
    "read_tagged",
    "split_wikitext_sentences",
    "task_files",
    "tokenize_simple",
    "word_types",
]
