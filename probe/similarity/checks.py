"""Checks of the ``similarity`` section that need the study's models or data files.

Each problem is returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

from probe.errors import ProbeError
from probe.similarity.config import CKA_CORPORA
from probe.study import Study

__all__ = ["check_similarity"]


def _unknown_models(names: list[str], labels: list[str], where: str) -> list[str]:
    return [
        f"{where}.{index}: {name!r} is not a model of the study; use one of {', '.join(labels)}"
        for index, name in enumerate(names)
        if name not in labels
    ]


def check_similarity(study: Study) -> list[str]:
    """Named models exist; the CKA sample and the UD split are there."""
    from probe.data import dataset_file

    section = study.similarity
    assert section is not None
    labels = [m.label for m in study.models]
    problems: list[str] = []
    needed: list[tuple[str, str, str]] = []
    if section.cka is not None:
        cka = section.cka
        if cka.reference is not None and cka.reference not in labels:
            problems.append(
                f"similarity.cka.reference: {cka.reference!r} is not a model of the study; "
                f"use one of {', '.join(labels)}"
            )
        if isinstance(cka.within, list):
            problems += _unknown_models(cka.within, labels, "similarity.cka.within")
        corpus, _, split = cka.data.partition(":")
        needed.append(("similarity.cka.data", CKA_CORPORA[corpus][0], split))
    if section.attention is not None:
        problems += _unknown_models(
            section.attention.models or [], labels, "similarity.attention.models"
        )
        needed.append(("similarity.attention.split", "ud_english_ewt", section.attention.split))
    for where, dataset, split in needed:
        try:
            dataset_file(dataset, split)
        except ProbeError as exc:
            problems.append(f"{where}: {exc}")
    return problems
