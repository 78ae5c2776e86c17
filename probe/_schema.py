"""Base class and value types shared by every study section (apart, so stage configs can import
them without importing each other)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["MAX_SEED", "PathName", "Seed", "StrictModel"]

# numpy's and torch's seeding accept 0 .. 2**32 - 1; anything else fails after a model loaded.
MAX_SEED = 2**32 - 1


class StrictModel(BaseModel):
    """Base of every study section: unknown keys are errors, values are immutable, and no float
    is infinite or NaN (``lr: .inf`` would train to NaN and still report a "complete" run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def _path_name(value: str) -> str:
    # A study or job name becomes one folder name (runs/<study>/, checkpoints/<job>/): it must
    # not climb out (".."), stay in place ("."), or exceed what a file system allows.
    if value in (".", ".."):
        raise ValueError(f"{value!r} is not a folder name; use letters, digits, _ . -")
    if len(value) > 255:
        raise ValueError(f"is {len(value)} characters long; a folder name has at most 255")
    return value


PathName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_path_name)]
