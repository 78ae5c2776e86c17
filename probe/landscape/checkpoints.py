"""The checkpoints of a training job that the landscape stage reads, and how it loads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from probe.errors import ModelError
from probe.models import ModelSource, checkpoint_dir, load_config, load_model

__all__ = ["Checkpoint", "classifier_source", "job_checkpoints", "load_classifier"]


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint of a job: its label (``step-N``/``final``), step and folder."""

    label: str
    step: int | None
    path: Path


def job_checkpoints(run_dir: str | Path, job: str) -> list[Checkpoint]:
    """``step-*`` checkpoints of ``job`` in step order, then ``final``.

    Raises
    ------
    ModelError
        When the job has no ``step-0`` (initial weights) or no ``final`` checkpoint.
    """
    final = checkpoint_dir(run_dir, job, "final")
    start = checkpoint_dir(run_dir, job, "0")
    steps = sorted(
        int(p.name.removeprefix("step-"))
        for p in start.parent.iterdir()
        if p.name.startswith("step-")
        and p.name.removeprefix("step-").isdigit()
        and (p / "config.json").exists()
    )
    points = [Checkpoint(f"step-{s}", s, checkpoint_dir(run_dir, job, str(s))) for s in steps]
    return [*points, Checkpoint("final", None, final)]


def classifier_source(path: Path, job: str, source_run: Path) -> ModelSource:
    """The checkpoint at ``path`` as a model source; a loud error unless it is a classifier."""
    source = ModelSource(spec=f"run:{source_run}:{job}@{path.name}", path=str(path))
    config = load_config(source)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures) or (
        config.problem_type not in (None, "single_label_classification")
    ):
        raise ModelError(
            f"{path}: job {job!r} did not train a sentence classifier ({architectures}); "
            "list SST-2 fine-tuning jobs in landscape.jobs"
        )
    return source


def load_classifier(path: Path, job: str, source_run: Path, seed: int) -> torch.nn.Module:
    """The sequence classifier saved at ``path``, in eval mode."""
    source = classifier_source(path, job, source_run)
    return load_model(source, AutoModelForSequenceClassification, seed=seed).eval()
