"""Study sections of the probe stage: ``probe`` (the probes) and ``capture`` (the word features).

A leaf module: pure pydantic, so validating a study imports neither torch nor the stage. The checks
that need data files live in :mod:`probe.probes.checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from probe._schema import Seed, StrictModel
from probe.data.sources import FileTask

__all__ = ["CaptureSection", "ProbeSection", "SpanSection"]


class CaptureSection(StrictModel):
    """How activations are read out of the encoder."""

    pooling: Literal["first", "mean", "last"] = "first"
    layers: Literal["all"] | list[Annotated[int, Field(ge=0)]] = "all"
    batch_tokens: Annotated[int, Field(gt=0)] = 8192
    max_length: Annotated[int, Field(gt=8)] | None = None
    stride: Annotated[int, Field(ge=0)] | None = None


class SpanSection(StrictModel):
    """How a span (and a pair of spans) becomes one probe input vector."""

    repr: list[Literal["mean", "endpoints"]] = ["mean", "endpoints"]
    pair_product: bool = False


# A task is a built-in name or a FileTask mapping (probe.data.sources); the discriminator keeps
# pydantic from reporting every bad mapping twice (once as "not a string").
TaskEntry = Annotated[
    Annotated[str, Tag("builtin")] | Annotated[FileTask, Tag("file")],
    Discriminator(lambda value: "builtin" if isinstance(value, str) else "file"),
]


class ProbeSection(StrictModel):
    """Linear probes per layer (``probe`` stage)."""

    tasks: Annotated[list[TaskEntry], Field(min_length=1)]
    C: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None
    standardize: bool = False
    control: bool = True
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0]
    bootstrap: Annotated[int, Field(ge=0)] = 1000
    span: SpanSection = SpanSection()
    mix: bool = False
    mix_max_train: Annotated[int, Field(gt=0)] | None = 20000
    mdl: bool = False  # online code length (Voita & Titov 2020) of task and control labels
    limit: dict[Literal["train", "dev", "test"], Annotated[int, Field(gt=0)] | None] = {}

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, tasks: list[str | FileTask]) -> list[str | FileTask]:
        names = [t if isinstance(t, str) else t.name for t in tasks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"task names must be unique, got {twice} twice")
        return tasks

    @property
    def task_names(self) -> list[str]:
        """The name of every task, built-in or from files, in order."""
        return [t if isinstance(t, str) else t.name for t in self.tasks]
