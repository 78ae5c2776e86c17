"""User-facing errors: every one is a single line naming the cause and the fix.

The CLI catches :class:`ProbeError` and exits with status 2, so raise one of these for anything a
user can get wrong (a study file, a model spec, a missing dataset) and let programming errors
surface as ordinary exceptions with a traceback.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base class of errors caused by user input; the CLI prints them on one line, exit 2."""


class StudyError(ProbeError, ValueError):
    """The study file is malformed or names something that does not exist.

    ``partial`` is set by :func:`probe.study.parse_study` when some stage sections are invalid but
    the study without them is valid: validation then still checks the rest, so one error lists
    every problem of the study (see :func:`probe.validate.validate_study`).

    ``problems`` holds the problems one by one (``probe check`` prints one per line); the message
    joins them with ``"; "``.
    """

    def __init__(
        self, message: str, *, partial: object | None = None, problems: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.partial = partial
        self.problems = problems if problems is not None else [message]

    @classmethod
    def of(cls, problems: list[str], *, partial: object | None = None) -> StudyError:
        """One error listing ``problems``."""
        return cls("; ".join(problems), partial=partial, problems=list(problems))


class ModelError(ProbeError):
    """A model spec cannot be resolved or loaded."""


class DataError(ProbeError):
    """A dataset cannot be found, read or parsed."""
