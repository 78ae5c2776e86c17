"""Checks of the ``structural`` section that need data files (no model loads).

Run by :func:`probe.validate.check_study` with every other check of the study; each problem is
returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

from probe.errors import ProbeError
from probe.study import Study

__all__ = ["check_structural"]


def check_structural(study: Study) -> list[str]:
    """The UD English EWT train, dev and test files exist."""
    from probe.data import SPLITS, dataset_file

    problems = []
    for split in SPLITS:
        try:
            dataset_file("ud_english_ewt", split)
        except ProbeError as exc:
            problems.append(f"structural: {exc}")
    return problems
