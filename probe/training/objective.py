"""What the training loop needs from a job: the :class:`Objective` protocol.

Pretraining (:class:`probe.training.pretrain.PretrainObjective`) and fine-tuning
(:class:`probe.training.finetune.FinetuneObjective`) differ only in their data, model and
metrics; the loop (:func:`probe.training.loop.train_job`) sees them through this interface.
Both are built the same way: a builder (``build_pretrain``, ``build_finetune``) reads the data,
gets the tokenizer and loads or initialises the model; the objective's constructor only stores
what the builder made (no file or model is read in a constructor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

__all__ = ["Objective"]


class Objective(Protocol):
    """Data, model and metrics of one training job, as the training loop uses them.

    Attributes
    ----------
    task : the ``task`` column of the job's rows (``mlm_nsp``, ``sst2`` ...).
    main_metric : the dev metric that picks the best step (``mlm_loss``, ``accuracy``, ``f1``).
    greater_is_better : whether a larger ``main_metric`` is better.
    n_examples : training examples per epoch.
    model : what checkpoints save (an HF ``PreTrainedModel``).
    tokenizer : saved with every checkpoint.
    module : what is trained: ``model`` itself, or a loss wrapper around it.
    head_prefixes : parameter-name prefixes that get ``head_lr``.
    find_unused_parameters : whether data-parallel training must expect unused parameters.
    final_splits : splits scored once after the last step (e.g. ``test``).
    lengths : tokens per training example, for ``group_by_length`` (None: not grouped).
    """

    task: str
    main_metric: str
    greater_is_better: bool
    n_examples: int
    model: Any
    tokenizer: Any
    module: nn.Module
    head_prefixes: tuple[str, ...]
    find_unused_parameters: bool
    final_splits: tuple[str, ...]
    lengths: np.ndarray | None

    def batch(
        self, examples: Sequence[tuple[int, int]], generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """CPU tensors of the training examples ``(epoch, index)``; ``generator`` draws masks."""
        ...

    def n_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Non-padding tokens of a batch, for throughput."""
        ...

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": ..., other parts}``, scalars; the loop logs every part."""
        ...

    def evaluate(
        self, module: nn.Module, device: torch.device, split: str = "dev"
    ) -> dict[str, float]:
        """Metrics on ``split`` (``main_metric`` among them)."""
        ...

    def extra_evaluations(self, module: nn.Module, device: torch.device) -> list[dict[str, Any]]:
        """Rows ``{split, metric, value}`` of other fixed evaluation sets, at every evaluation."""
        ...

    def baseline_rows(self) -> list[dict[str, Any]]:
        """Constant reference rows ``{split, metric, value}`` (majority label, entropy ...)."""
        ...
