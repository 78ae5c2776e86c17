"""Sentence embeddings: pooling, BERT-whitening, STS evaluation and isotropy.

Public names are loaded on first use, so that validating a study (which imports
:mod:`probe.embeddings.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "POOLING_KINDS",
    "STS_TASKS",
    "EmbeddingsSection",
    "Pooling",
    "STSData",
    "Whitening",
    "average_cosine",
    "cosine_similarity",
    "encode_sentences",
    "isotropy",
    "load_sts",
    "parse_variant",
    "pool",
    "resolve_pooling",
    "sentence_vectors",
    "sts_scores",
    "variance_shares",
    "whitening_kernel",
]

_HOMES = {
    "EmbeddingsSection": "config",
    "POOLING_KINDS": "pooling", "Pooling": "pooling", "encode_sentences": "pooling",
    "pool": "pooling", "resolve_pooling": "pooling", "sentence_vectors": "pooling",
    "STS_TASKS": "sts", "STSData": "sts", "cosine_similarity": "sts", "load_sts": "sts",
    "sts_scores": "sts",
    "Whitening": "whitening", "parse_variant": "whitening", "whitening_kernel": "whitening",
    "average_cosine": "isotropy", "isotropy": "isotropy", "variance_shares": "isotropy",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'probe.embeddings' has no attribute {name!r}")
    return getattr(importlib.import_module(f"probe.embeddings.{_HOMES[name]}"), name)
