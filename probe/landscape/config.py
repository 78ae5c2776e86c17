"""Study section of the landscape stage: which trained jobs to look at, and how closely.

Example (all keys optional; the defaults are a CPU-sized run)::

    landscape:
      jobs: [pretrained, scratch]       # jobs of the `train:` section (default: all of them)
      examples: {train: 256, dev: 256}  # fixed SST-2 batches the loss is measured on
      ignore: biasbn                    # leave biases and LayerNorm unperturbed (Li et al.)
      line: {alpha: [-0.5, 1.5], points: 21}
      random_plane: {span: 1.0, points: 11}
      pca_plane: {points: 11, margin: 0.25}
      sharpness: {hessian_iterations: 20, radii: [0.05, 0.1], directions: 8}
      layers: {points: 5}               # per-layer line from initial to final weights (opt-in)
      convergence: {thresholds: [0.5, 0.2, 0.1, 0.05]}   # steps to train-loss thresholds (opt-in)

A sub-section set to ``null`` is skipped (``pca_plane: null``).

A leaf module (pure pydantic); the checks that need files are in :mod:`probe.landscape.checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from probe._schema import Seed, StrictModel
from probe.training.config import FinetuneJob, TrainSection

__all__ = [
    "ConvergenceSection",
    "LandscapeSection",
    "LayersSection",
    "LineSection",
    "PCAPlaneSection",
    "RandomPlaneSection",
    "SharpnessSection",
    "train_job_names",
]

#: The registered dataset the landscape objective reads (its ``task: sst2``).
SST2_DATASET = "sst2_glue"

PositiveInt = Annotated[int, Field(gt=0)]


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"must be odd so the grid's centre is the trained model, got {value}")
    return value


class LineSection(StrictModel):
    """1-D: ``theta(a) = theta_0 + a (theta_1 - theta_0)`` from the start to the final weights."""

    alpha: tuple[float, float] = (-0.5, 1.5)
    points: Annotated[int, Field(ge=2)] = 21

    @model_validator(mode="after")
    def _increasing(self) -> LineSection:
        if not self.alpha[0] < self.alpha[1]:
            raise ValueError(f"alpha must be [low, high] with low < high, got {list(self.alpha)}")
        return self


class RandomPlaneSection(StrictModel):
    """2-D around the final weights along two filter-normalised Gaussian directions."""

    span: Annotated[float, Field(gt=0)] = 1.0
    points: Annotated[int, Field(ge=3)] = 11

    @field_validator("points")
    @classmethod
    def _odd_points(cls, value: int) -> int:
        return _odd(value)


class PCAPlaneSection(StrictModel):
    """2-D around the final weights in the plane of the top-2 PCs of the checkpoints."""

    points: Annotated[int, Field(ge=3)] = 11
    margin: Annotated[float, Field(ge=0)] = 0.25

    @field_validator("points")
    @classmethod
    def _odd_points(cls, value: int) -> int:
        return _odd(value)


class SharpnessSection(StrictModel):
    """Top Hessian eigenvalue (train batches) and mean loss rise at filter-normalised radii."""

    hessian_iterations: Annotated[int, Field(ge=0)] = 20
    hessian_tolerance: Annotated[float, Field(gt=0)] = 1e-3
    radii: list[Annotated[float, Field(gt=0)]] = [0.05, 0.1]
    directions: PositiveInt = 8


class LayersSection(StrictModel):
    """Layer invariance: relative weight change per layer, and a 1-D curve per layer that moves
    only that layer from its initial (alpha 0) to its final (alpha 1) weights."""

    points: Annotated[int, Field(ge=2)] = 5


class ConvergenceSection(StrictModel):
    """Steps and seconds until the training-subset loss reaches each threshold (jobs trained
    with a ``stop`` criterion log that loss)."""

    thresholds: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] = [
        0.5,
        0.2,
        0.1,
        0.05,
    ]


class LandscapeSection(StrictModel):
    """Loss landscapes of fine-tuning runs (Hao et al. 2019; Li et al. 2018)."""

    jobs: Annotated[list[str], Field(min_length=1)] | None = None
    from_run: str | None = None
    task: Literal["sst2"] = "sst2"
    examples: dict[Literal["train", "dev"], PositiveInt] = {"train": 256, "dev": 256}
    batch_size: PositiveInt = 64
    max_length: Annotated[int, Field(gt=8)] = 64
    seed: Seed | None = None
    ignore: Literal["biasbn", "none"] = "biasbn"
    line: LineSection | None = LineSection()
    random_plane: RandomPlaneSection | None = RandomPlaneSection()
    pca_plane: PCAPlaneSection | None = PCAPlaneSection()
    sharpness: SharpnessSection | None = SharpnessSection()
    layers: LayersSection | None = None
    convergence: ConvergenceSection | None = None
    save_directions: bool = True

    @field_validator("examples")
    @classmethod
    def _some_split(cls, value: dict[str, int]) -> dict[str, int]:
        if not value:
            raise ValueError("name at least one split, e.g. {train: 256, dev: 256}")
        return value


def train_job_names(train: TrainSection | None, task: str | None = None) -> list[str] | None:
    """Names of the jobs of a study's ``train:`` section (None without one).

    With ``task``, only the fine-tuning jobs on that task (the ones a landscape can score).
    """
    if train is None:
        return None
    jobs = [
        job
        for job in train.jobs
        if task is None or (isinstance(job, FinetuneJob) and job.task == task)
    ]
    return [job.name for job in jobs]
