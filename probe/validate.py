"""The one validation step: every problem of a study, found before any model loads, at once.

:func:`probe.study.load_study` checks the schema (types, ranges, unknown keys; pure pydantic).
:func:`check_study` then runs what needs models' configs or data files: every model of the study
resolves, and each stage's registered check (:mod:`probe.stages`). Problems are collected, never
raised one by one, and :func:`validate_study` also runs the checks of the sections that passed the
schema when others did not, so the user fixes a study in one round (exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from probe._yaml import shorten
from probe.errors import ProbeError, StudyError
from probe.stages import load_function, stage
from probe.study import Study, load_study

__all__ = ["check_studies", "check_study", "study_problems", "validate_study"]


def _model_problems(study: Study) -> list[str]:
    """Every model spec resolves to a config (read as JSON: no torch, no weights)."""
    from probe.model_spec import ModelSpec, read_config, resolve_model

    problems = []
    for index, entry in enumerate(study.models):
        if ModelSpec.parse(entry.spec).trained_job is not None:
            continue  # made by this run's train stage; its check says whether the job exists
        try:
            read_config(resolve_model(entry.spec))
        except (ProbeError, OSError) as exc:
            problems.append(f"models.{index} ({entry.label}): {_reason(exc)}")
    return problems


def _reason(exc: Exception) -> str:
    """A problem in words; an OSError from a path in the study (a name too long for the file
    system, a folder that cannot be read) is the user's input too, not a crash."""
    if isinstance(exc, OSError) and not isinstance(exc, ProbeError):
        return f"{exc.strerror or exc}: {shorten(str(exc.filename or ''), 60)}; use a shorter path"
    return str(exc)


def study_problems(study: Study) -> list[str]:
    """Problems that need models or files: the models, then each stage's check, in stage order."""
    from probe.bounds import bound_problems
    from probe.trackers import tracker_problems

    problems = _model_problems(study) + tracker_problems(study.report_to) + bound_problems(study)
    for name in study.stages:
        check = stage(name).check
        if check is None:
            continue
        try:
            problems += load_function(check)(study)
        except (ProbeError, OSError) as exc:  # a check that raises still reports, with the others
            problems.append(str(exc) if isinstance(exc, ProbeError) else f"{name}: {_reason(exc)}")
    return problems


def check_study(study: Study, source: str | None = None) -> None:
    """Raise one :class:`StudyError` listing every problem of :func:`study_problems`."""
    problems = study_problems(study)
    if problems:
        prefix = f"{source}: " if source else ""
        raise StudyError.of([prefix + p for p in problems])


def validate_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Load, validate and check the study file at ``path``: one error with every problem.

    Raises
    ------
    StudyError
        Schema problems (from :func:`probe.study.load_study`) and the problems of the checks of
        every section that passed the schema, joined with ``"; "``.
    """
    try:
        study = load_study(path, overrides)
    except StudyError as exc:
        if not isinstance(exc.partial, Study):
            raise
        more = study_problems(exc.partial)
        if not more:
            raise
        raise StudyError.of([*exc.problems, *(f"{path}: {p}" for p in more)]) from None
    check_study(study, source=str(path))
    return study


def check_studies(
    paths: Sequence[str | Path], overrides: Sequence[str] = (), sweeps: Sequence[str] = ()
) -> list[tuple[str, Study | None, list[str]]]:
    """Validate every run that ``probe run`` would start, without starting any.

    Returns
    -------
    list of (label, study, problems)
        One entry per study file and sweep value: the study (None when invalid) and every
        problem found (schema, overrides, data files, model specs, stage checks).
    """
    from probe.overrides import sweep_overrides

    out: list[tuple[str, Study | None, list[str]]] = []
    for path in paths:
        for combo in sweep_overrides(sweeps):
            label = " ".join([str(path), *(f"--set {o}" for o in combo)])
            try:
                study = validate_study(path, [*overrides, *combo])
            except StudyError as exc:
                out.append((label, None, exc.problems))
            except ProbeError as exc:
                out.append((label, None, [str(exc)]))
            else:
                out.append((label, study, []))
    return out
