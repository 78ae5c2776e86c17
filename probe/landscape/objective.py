"""The function a loss landscape plots: mean cross-entropy (and accuracy) on fixed batches.

A landscape compares hundreds of parameter vectors, so every one must be scored on *exactly* the
same examples: the batches are tokenised once, padded per batch, moved to the device once, and
reused for every grid point. Examples are sorted by length before batching, which removes most
padding (the mean over examples does not depend on their order).

Evaluation never synchronises with the host inside the batch loop: the loss sum and the number of
correct predictions are accumulated in a device tensor, and :meth:`Objective.totals` returns that
tensor so a caller can evaluate a whole grid before reading anything back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch.nn import functional

from probe.data import dataset_file, read_sst2
from probe.errors import DataError
from probe.landscape.config import SST2_DATASET

__all__ = ["Objective", "sst2_objective", "tokenize_batches"]


def tokenize_batches(
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | torch.device = "cpu",
) -> list[dict[str, torch.Tensor]]:
    """Tokenise once, sort by length, pad per batch and move every batch to ``device``.

    Returns
    -------
    list of dict
        Each batch maps ``input_ids``/``attention_mask`` (and ``token_type_ids`` when the
        tokenizer makes them) to long tensors of shape (batch, padded_length), and ``labels`` to
        shape (batch,).
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise DataError("the landscape objective has no examples; raise landscape.examples")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: (len(encoded["input_ids"][i]), i))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        features = [{key: encoded[key][i] for key in encoded} for i in rows]
        padded = tokenizer.pad(features, return_tensors="pt")
        batch = {key: value.to(device) for key, value in padded.items()}
        batch["labels"] = torch.tensor([labels[i] for i in rows], dtype=torch.long, device=device)
        batches.append(batch)
    return batches


class Objective:
    """Mean cross-entropy and accuracy of a sequence classifier on fixed, device-resident batches.

    Parameters
    ----------
    batches : list of dict
        From :func:`tokenize_batches`; model inputs plus ``labels``.
    autocast : torch.dtype or None
        Autocast dtype for the forward pass (CUDA only; see :func:`autocast_dtype`). The loss is
        always computed in fp32 from fp32-cast logits.

    Examples
    --------
    >>> import torch
    >>> class Const(torch.nn.Module):
    ...     def forward(self, input_ids, attention_mask=None):
    ...         return type("Out", (), {"logits": torch.zeros(len(input_ids), 2)})()
    >>> batches = [{"input_ids": torch.ones(4, 3, dtype=torch.long),
    ...             "labels": torch.tensor([0, 1, 1, 1])}]
    >>> loss, accuracy = Objective(batches).evaluate(Const())
    >>> round(loss, 4), accuracy
    (0.6931, 0.25)
    """

    def __init__(
        self, batches: list[dict[str, torch.Tensor]], *, autocast: torch.dtype | None = None
    ) -> None:
        if not batches:
            raise ValueError("an Objective needs at least one batch")
        self.batches = batches
        self.autocast = autocast
        self.n_examples = int(sum(len(b["labels"]) for b in batches))
        self.device = batches[0]["labels"].device

    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value for key, value in batch.items() if key != "labels"}

    def _autocast(self) -> Any:
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    @torch.inference_mode()
    def totals(self, model: torch.nn.Module) -> torch.Tensor:
        """Summed loss and number of correct predictions, left on the device (no host sync).

        Returns
        -------
        torch.Tensor
            Shape (2,), float32: ``[sum of per-example cross-entropy, number correct]``.
        """
        total = torch.zeros(2, dtype=torch.float32, device=self.device)
        for batch in self.batches:
            with self._autocast():
                logits = model(**self._inputs(batch)).logits
            logits = logits.float()
            total[0] += functional.cross_entropy(logits, batch["labels"], reduction="sum")
            total[1] += (logits.argmax(dim=-1) == batch["labels"]).sum()
        return total

    def evaluate(self, model: torch.nn.Module) -> tuple[float, float]:
        """Mean loss and accuracy of ``model`` (one host sync).

        Divides in float64 on the host, exactly as a grid does, so the two agree bit for bit.
        """
        loss, accuracy = (self.totals(model).double().cpu() / self.n_examples).tolist()
        return float(loss), float(accuracy)

    def batch_losses(self, model: torch.nn.Module) -> Iterator[torch.Tensor]:
        """Differentiable contributions ``sum_b CE / n_examples``; they add up to the mean loss.

        Runs in fp32 without autocast: second derivatives (Hessian-vector products) in bf16 are
        too coarse for power iteration to converge.
        """
        for batch in self.batches:
            logits = model(**self._inputs(batch)).logits.float()
            loss_sum = functional.cross_entropy(logits, batch["labels"], reduction="sum")
            yield loss_sum / self.n_examples


def sst2_objective(
    tokenizer: Any,
    split: str,
    n_examples: int | None,
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | torch.device = "cpu",
    autocast: torch.dtype | None = None,
) -> Objective:
    """An :class:`Objective` over the first ``n_examples`` SST-2 sentences of ``split``.

    ``split`` is ``train`` or ``dev`` (the GLUE test split has no labels). The first N examples
    are taken in file order, the same rule ``limit`` uses elsewhere, so the train objective
    scores the examples a limited training job saw first.
    """
    if split not in ("train", "dev"):
        raise DataError(f"SST-2 split {split!r} has no labels; use train or dev")
    examples = read_sst2(dataset_file(SST2_DATASET, split))
    if n_examples is not None:
        examples = examples[:n_examples]
    return Objective(
        tokenize_batches(
            tokenizer,
            [e.sentence for e in examples],
            [int(e.label) for e in examples],  # type: ignore[arg-type]  # labelled splits
            batch_size=batch_size,
            max_length=max_length,
            device=device,
        ),
        autocast=autocast,
    )
