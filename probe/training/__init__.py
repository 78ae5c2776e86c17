"""Training stage: pretraining (masked LM + next-sentence prediction) and fine-tuning.

The study's ``train`` section (:class:`TrainSection`) lists jobs; :func:`run_training` runs them
through one accelerate-based loop (:func:`train_job`) that saves resumable checkpoints into
``checkpoints/<job>/step-<N>/`` and ``final/`` and writes ``results/training.parquet``.
"""

from probe.training.config import FinetuneJob, PretrainJob, TrainSection, model_sizes, saved_steps

__all__ = [
    "FinetuneJob",
    "PretrainJob",
    "TrainSection",
    "model_sizes",
    "run_training",
    "saved_steps",
    "train_job",
]


def __getattr__(name: str):
    # The loop and the stage pull in accelerate, the data layer and plotting; the study schema
    # imports this package, so import them only when asked for.
    if name == "run_training":
        from probe.training.stage import run_training

        return run_training
    if name == "train_job":
        from probe.training.loop import train_job

        return train_job
    raise AttributeError(f"module 'probe.training' has no attribute {name!r}")
