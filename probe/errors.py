"""User-facing errors: every one is a single line naming the cause and the fix.

The CLI catches :class:`ProbeError` and exits with status 2, so raise one of these for anything a
user can get wrong (a study file, a model spec, a missing dataset) and let programming errors
surface as ordinary exceptions with a traceback.
"""

from __future__ import annotations

# Problems a one-line error message lists, and the length of each (`probe check` prints all of
# them whole, one per line).
MAX_PROBLEMS_SHOWN = 5
MAX_MESSAGE_CHARS = 240


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
        """One error listing ``problems``; the message shows the first few and counts the rest
        (a list of 1,000 bad items is one mistake, not a 100 kB line)."""
        shown = [_cut(problem) for problem in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > len(shown):
            shown.append(f"and {len(problems) - len(shown)} more (`probe check` lists them)")
        return cls("; ".join(shown), partial=partial, problems=list(problems))


def _cut(problem: str) -> str:
    # A problem that quotes a pathologically long value is cut; `probe check` prints it whole.
    if len(problem) <= MAX_MESSAGE_CHARS:
        return problem
    return problem[: MAX_MESSAGE_CHARS - 3] + "..."


class ModelError(ProbeError):
    """A model spec cannot be resolved or loaded."""


class DataError(ProbeError):
    """A dataset cannot be found, read or parsed."""


class RunLockedError(ProbeError):
    """Another process is working in the run folder this command wanted."""


class DiskFullError(Exception):
    """A write does not fit on its disk (exit status 1: not the user's input, but not a bug)."""


class RunInterruptedError(Exception):
    """A run stopped by Ctrl-C or SIGTERM; its folder is marked ``interrupted`` (exit 130).

    Deliberately not a :class:`KeyboardInterrupt`: typer turns those into a bare exit status.
    """
