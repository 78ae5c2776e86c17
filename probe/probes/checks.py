"""Checks of the ``probe`` section that need the task registry and data files (no model loads).

Run by :func:`probe.validate.check_study` with every other check of the study; each problem is
returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

import difflib

from probe.errors import ProbeError
from probe.study import Study

__all__ = ["MDL_MIN_SENTENCES", "check_probe"]

#: ``probe.mdl`` needs this many training sentences: the first online block is 0.1 % of them
#: (``probe.probes.mdl.VOITA_TIMESTAMPS[0]``, not imported here: it would import torch).
MDL_MIN_SENTENCES = 1000


def check_probe(study: Study) -> list[str]:
    """Unknown tasks, data files that are missing or unreadable (FILE:LINE), and every file of a
    file task parsed (a bad line is a problem naming file and line)."""
    from probe.data import TASKS, FileTask, dataset_info, read_file_task
    from probe.data.check import check_split_readable

    section = study.probe
    assert section is not None
    problems: list[str] = []
    train_limit = section.limit.get("train")
    if section.mdl and train_limit is not None and train_limit < MDL_MIN_SENTENCES:
        problems.append(
            f"probe.mdl: online coding needs at least {MDL_MIN_SENTENCES} training sentences "
            f"(its first block is 0.1 % of them), got probe.limit.train = {train_limit}; raise "
            "the limit or remove it"
        )
    for index, name in enumerate(section.tasks):
        if isinstance(name, FileTask):
            if name.name in TASKS:
                problems.append(
                    f"probe.tasks.{index}: {name.name!r} is a built-in task; give your file task "
                    f"another name (e.g. {name.name}_own)"
                )
            try:
                read_file_task(name)
            except ProbeError as exc:
                problems.append(f"probe.tasks.{index} ({name.name}): {exc}")
            continue
        if name not in TASKS:
            close = difflib.get_close_matches(name, list(TASKS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"probe.tasks.{index}: unknown task {name!r}{hint}; available: {', '.join(TASKS)}"
            )
            continue
        dataset = TASKS[name].dataset
        # Every file the dataset registers (UNER and SemEval ship no dev file; the task carves
        # dev out of another split).
        for split in dataset_info(dataset).splits:
            try:
                check_split_readable(dataset, split)  # missing, not UTF-8 (FILE:LINE), empty
            except ProbeError as exc:
                problems.append(f"probe.tasks.{index} ({name}): {exc}")
    return problems
