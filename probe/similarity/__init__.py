"""Representational similarity (linear CKA) and attention-head analysis.

Public names are loaded on first use, so that validating a study (which imports
:mod:`probe.similarity.config`) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CKAResult",
    "HeadStatistics",
    "SimilaritySection",
    "analyse_heads",
    "attention_maps",
    "cka_matrix",
    "linear_cka",
    "offset_baseline",
    "random_baseline",
    "word_attention",
]

_HOMES = {
    "CKAResult": "cka", "cka_matrix": "cka", "linear_cka": "cka", "random_baseline": "cka",
    "HeadStatistics": "attention", "analyse_heads": "attention", "attention_maps": "attention",
    "offset_baseline": "attention", "word_attention": "attention",
    "SimilaritySection": "config",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'probe.similarity' has no attribute {name!r}")
    return getattr(importlib.import_module(f"probe.similarity.{_HOMES[name]}"), name)
