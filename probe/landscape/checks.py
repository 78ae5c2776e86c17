"""Checks of the ``landscape`` section that need files: jobs to read, checkpoints, SST-2.

Run by :func:`probe.validate.check_study` with every other check of the study; each problem is
returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

from pathlib import Path

from probe.errors import ProbeError
from probe.landscape.config import SST2_DATASET, train_job_names
from probe.study import Study

__all__ = ["check_landscape"]


def check_landscape(study: Study) -> list[str]:
    """Unknown jobs, no checkpoints to read, missing data."""
    from probe.data.check import check_split_readable

    section = study.landscape
    assert section is not None
    problems: list[str] = []
    if section.from_run is not None:
        if not (Path(section.from_run) / "checkpoints").is_dir():
            problems.append(
                f"landscape.from_run: {section.from_run} has no checkpoints/ folder; "
                "point it at a run folder whose train stage finished"
            )
    else:
        trained = train_job_names(study.train, task=section.task)
        if trained is None:
            problems.append(
                "landscape: needs trained checkpoints; add a `train:` section or set "
                "landscape.from_run to an earlier run folder"
            )
        elif not trained:
            problems.append(
                f"landscape: the train section has no fine-tuning job on {section.task}; "
                f"add one (kind: finetune, task: {section.task})"
            )
        else:
            for index, job in enumerate(section.jobs or []):
                if job not in trained:
                    problems.append(
                        f"landscape.jobs.{index}: {job!r} is not a {section.task} fine-tuning "
                        f"job of the train section; those are: {', '.join(trained)}"
                    )
            if section.convergence is not None and study.train is not None:
                problems += [
                    f"landscape.convergence: job {name!r} has no stop criterion, so its "
                    "training-subset loss is never scored; add stop: {train_loss: 0.05}"
                    for name in section.jobs or trained
                    if name in trained and getattr(study.train.job(name), "stop", None) is None
                ]
    for split in section.examples:
        try:
            check_split_readable(SST2_DATASET, split)  # missing, not UTF-8 (FILE:LINE), empty
        except ProbeError as exc:
            problems.append(f"landscape.examples.{split}: {exc}")
    return problems
