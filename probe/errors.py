"""User-facing errors: every one is a single line naming the cause and the fix.

The CLI catches :class:`ProbeError` and exits with status 2, so raise one of these for anything a
user can get wrong (a study file, a model spec, a missing dataset) and let programming errors
surface as ordinary exceptions with a traceback.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Base class of errors caused by user input; the CLI prints them on one line, exit 2."""


class StudyError(ProbeError, ValueError):
    """The study file is malformed or names something that does not exist."""


class ModelError(ProbeError):
    """A model spec cannot be resolved or loaded."""


class DataError(ProbeError):
    """A dataset cannot be found, read or parsed."""
