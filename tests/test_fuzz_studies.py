"""Fuzzing the shipped studies: every mutation is a clean one-line error or a truly valid study.

A few hundred seeded mutations (see :mod:`tests.study_fuzz`), validated in-process as `probe run`
validates before any model loads: never a traceback, never a hang, never an error longer than
300 characters or on several lines, and never an accepted study with a non-finite float, an
out-of-range seed, an unsafe name or a bound its model cannot meet.
"""

from __future__ import annotations

from pathlib import Path

from tests.study_fuzz import STUDIES, fuzz

N_PER_STUDY = 20  # x 11 studies; about 25 s on a busy 2-core machine


def test_every_mutation_of_every_shipped_study_is_a_clean_error_or_valid(data_dir: Path) -> None:
    counts, bad = fuzz(N_PER_STUDY, seed=0)
    assert sum(counts.values()) == N_PER_STUDY * len(STUDIES)
    assert not bad, "\n".join(" | ".join(row) for row in bad[:10])
    # The mutations exercise both paths: most are errors, some are harmless and accepted.
    assert counts["clean"] > counts["accepted"] > 0
