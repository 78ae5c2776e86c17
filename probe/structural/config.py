"""Schema of the ``structural:`` study section (a pure leaf: no torch, no data)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from probe._schema import StrictModel

__all__ = ["StructuralSection"]


class StructuralSection(StrictModel):
    """Structural probes (Hewitt & Manning 2019) on UD English EWT trees, every layer.

    ``tasks``: ``distance`` (squared distances between word vectors under ``B`` match tree
    distances; UUAS and DSpr.) and ``depth`` (squared norms match depths; root accuracy and
    NSpr.). Training follows the reference code: Adam at ``lr`` on batches of ``batch_size``
    sentences, learning rate / 10 on a dev plateau, best dev epoch kept, stop after 5 epochs
    without improvement or at ``epochs``. Word vectors come from the study's ``capture``
    section (the reference averages subwords: ``capture.pooling: mean``).
    """

    tasks: Annotated[list[Literal["distance", "depth"]], Field(min_length=1)] = [
        "distance",
        "depth",
    ]
    rank: Annotated[int, Field(gt=0)] = 64
    epochs: Annotated[int, Field(gt=0)] = 40
    batch_size: Annotated[int, Field(gt=0)] = 20
    lr: Annotated[float, Field(gt=0)] = 1e-3
    seed: int | None = None
    limit: dict[Literal["train", "dev", "test"], Annotated[int, Field(gt=0)] | None] = {}
    example: Annotated[int, Field(ge=0)] | None = None

    @field_validator("tasks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"tasks must not repeat, got {value}")
        return value
