"""Tiny seeded BERT classifiers and batches shared by the landscape tests (no tests here)."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

from probe.landscape.objective import Objective

VOCAB = 60


def tiny_config(**overrides) -> BertConfig:
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    settings.update(overrides)
    return BertConfig(**settings)


def tiny_model(seed: int = 0, **overrides) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config(**overrides)).eval()


def synthetic_batches(
    n: int = 48, batch_size: int = 16, seed: int = 0, length: int = 10
) -> list[dict[str, torch.Tensor]]:
    """Random token sequences; the label is whether token 7 occurs (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (n, length), generator=g)
    ids[: n // 2, 3] = 7
    ids[:, 0] = 2  # a [CLS]-like first token
    labels = (ids == 7).any(dim=1).long()
    order = torch.randperm(n, generator=g)
    ids, labels = ids[order], labels[order]
    mask = torch.ones_like(ids)
    mask[::3, -2:] = 0  # some padding, so attention masks matter
    return [
        {
            "input_ids": ids[i : i + batch_size],
            "attention_mask": mask[i : i + batch_size],
            "labels": labels[i : i + batch_size],
        }
        for i in range(0, n, batch_size)
    ]


def fine_tune(
    model: torch.nn.Module,
    batches: list[dict[str, torch.Tensor]],
    steps: int = 20,
    lr: float = 3e-3,
    seed: int = 0,
    save_every: int | None = None,
    folder=None,
) -> list[int]:
    """A few Adam steps; optionally ``save_pretrained`` to ``folder/step-N`` every few steps."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    saved = []
    model.train()
    for step in range(steps + 1):
        if folder is not None and save_every and step % save_every == 0:
            model.save_pretrained(folder / f"step-{step}")
            saved.append(step)
        if step == steps:
            break
        batch = batches[step % len(batches)]
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return saved


def objective(seed: int = 0, n: int = 48) -> Objective:
    return Objective(synthetic_batches(n=n, seed=seed))
