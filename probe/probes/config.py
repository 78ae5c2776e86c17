"""Study sections of the probe stage: ``probe`` (the probes) and ``capture`` (the word features).

A leaf module: pure pydantic, so validating a study imports neither torch nor the stage. The checks
that need data files live in :mod:`probe.probes.checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from probe._schema import StrictModel

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


class ProbeSection(StrictModel):
    """Linear probes per layer (``probe`` stage)."""

    tasks: Annotated[list[str], Field(min_length=1)]
    C: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None
    standardize: bool = False
    control: bool = True
    seeds: Annotated[list[int], Field(min_length=1)] = [0]
    bootstrap: Annotated[int, Field(ge=0)] = 1000
    span: SpanSection = SpanSection()
    mix: bool = False
    mix_max_train: Annotated[int, Field(gt=0)] | None = 20000
    limit: dict[Literal["train", "dev", "test"], Annotated[int, Field(gt=0)] | None] = {}
