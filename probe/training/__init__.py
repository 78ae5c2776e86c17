"""Training stage: pretraining (masked LM + next-sentence prediction) and fine-tuning.

The study's ``train`` section (:class:`TrainSection`) lists jobs;
:func:`probe.training.stage.run_training` runs them through one accelerate-based loop
(:func:`probe.training.loop.train_job`) that saves resumable checkpoints into
``checkpoints/<job>/step-<N>/`` and ``final/`` and writes ``results/training.parquet``. This
package imports only the schema (no torch); import the loop and the stage from their modules.
"""

from probe.training.config import FinetuneJob, PretrainJob, TrainSection, model_sizes, saved_steps

__all__ = ["FinetuneJob", "PretrainJob", "TrainSection", "model_sizes", "saved_steps"]
