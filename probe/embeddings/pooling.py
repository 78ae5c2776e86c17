"""Sentence vectors from an encoder: [CLS], the pooler, and masked means of any layers.

Pooling names are a contract shared by study files, results tables and figures. Layers are
``0..L`` (0 = embedding output = ``hidden_states[0]``, L = last encoder layer); ``last`` means L.

=========================  =================================================================
pooling                    sentence vector
=========================  =================================================================
``cls`` / ``cls@l``        hidden state of the first token ([CLS]) at layer L / layer l,
                           *before* the pooler
``pooler``                 the pooler output ``tanh(W h_[CLS]^L + b)`` (models with a pooler)
``mean`` / ``mean@l``      mean over every real token, [CLS] and [SEP] included, at layer L / l
``mean_nospecial[@l]``     the same mean without the special tokens ([CLS], [SEP])
``mean@a+b+...``           average of ``mean@a``, ``mean@b``, ... (any chosen layers)
``first_last_avg``         ``mean@1+L``: layer 1 (first *encoder* layer) and layer L
=========================  =================================================================

``mean`` includes the special tokens because that is what sentence-transformers does (its
``Pooling`` module averages every position whose attention mask is 1), so ``mean`` on
all-MiniLM-L6-v2 reproduces that model's published embeddings; ``mean_nospecial`` is the ablation.

``first_last_avg`` is layer 1 and layer L, not the embedding layer: BERT-whitening's reference code
averages the outputs of ``Transformer-0-FeedForward-Norm`` and the last block (bert4keras names the
first encoder block 0), i.e. ``hidden_states[1]`` and ``hidden_states[L]``, and its PyTorch port
writes ``hidden_states[1]`` explicitly. SimCSE's ``avg_first_last`` used ``hidden_states[0]`` (the
embedding output) until it was fixed (princeton-nlp/SimCSE issue #133), and BERT-flow's
``avg-last-2`` was reported to average the first and last layers (bohanli/BERT-flow issue #11), so
published "first-last" numbers do not all mean the same layers. Here ``mean@0+6`` names the other
reading explicitly.

Sentences are tokenized with special tokens, truncated to the model limit (not windowed: a
sentence vector needs one pass), sorted by length and batched under a padded-token budget; the
forward pass runs under autocast on CUDA and every pooled sum is taken in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from probe.capture import capture_layers, position_limit
from probe.embeddings.pooling_spec import (
    POOLING_KINDS,
    Pooling,
    check_pooling_spec,
    resolve_pooling,
)
from probe.runtime import autocast

__all__ = [
    "POOLING_KINDS",
    "Pooling",
    "check_pooling_spec",
    "encode_sentences",
    "length_batches",
    "pool",
    "resolve_pooling",
    "sentence_vectors",
]


def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[np.ndarray]:
    """Group sequence indices into batches of similar length, longest first.

    Each batch costs ``len(batch) * longest`` padded tokens and stays within ``batch_tokens``
    (a single longer sequence gets a batch of its own). Longest first, so the batch with the peak
    memory runs first and an out-of-memory error happens at once.

    >>> [b.tolist() for b in length_batches([3, 9, 4, 8], batch_tokens=16)]
    [[1], [3, 2], [0]]
    """
    lengths = np.asarray(lengths)
    batches: list[np.ndarray] = []
    current: list[int] = []
    longest = 0
    for index in np.argsort(-lengths, kind="stable").tolist():
        widest = max(longest, int(lengths[index]))
        if current and widest * (len(current) + 1) > batch_tokens:
            batches.append(np.array(current))
            current, widest = [], int(lengths[index])
        current.append(index)
        longest = widest
    if current:
        batches.append(np.array(current))
    return batches


def _parse_feature(name: str) -> tuple[str, int | None]:
    if name == "pooler":
        return "pooler", None
    kind, _, layer = name.partition("@")
    if kind not in ("cls", "mean", "mean_nospecial") or not layer.isdigit():
        raise ValueError(f"base vector {name!r} is not <cls|mean|mean_nospecial>@<layer> or pooler")
    return kind, int(layer)


def encode_sentences(
    model: nn.Module,
    tokenizer: object,
    sentences: Sequence[str],
    features: Sequence[str],
    *,
    batch_tokens: int = 8192,
    max_length: int | None = None,
    precision: str = "auto",
    out: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Base vectors of every sentence: one forward pass per batch, hooks on the layers needed.

    Parameters
    ----------
    model : a BERT-style encoder (``AutoModel``), on its device.
    tokenizer : its tokenizer.
    sentences : n_sentences strings.
    features : names ``cls@<l>``, ``mean@<l>``, ``mean_nospecial@<l>`` or ``pooler``
        (see :attr:`Pooling.features`).
    batch_tokens : padded-token budget per batch.
    max_length : truncation length including special tokens; default the model's limit.
    precision : ``auto``/``bf16``/``fp16`` autocast on CUDA; CPU always runs in float32.
    out : optional array of shape (n_features, n_sentences, d_model) to write into (e.g. a
        float16 memory map).

    Returns
    -------
    array of shape (n_features, n_sentences, d_model), float32 unless ``out`` is given.
    """
    parsed = [_parse_feature(f) for f in features]
    layers = sorted({layer for _, layer in parsed if layer is not None})
    device = next(model.parameters()).device
    d_model = int(model.config.hidden_size)
    limit = max_length or position_limit(model)
    if out is None:
        out = np.zeros((len(features), len(sentences), d_model), dtype=np.float32)
    if not sentences:
        return out
    encoded = tokenizer(  # type: ignore[operator]
        list(sentences), truncation=True, max_length=limit, return_special_tokens_mask=True
    )
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    lengths = [len(x) for x in ids]
    pad_id = tokenizer.pad_token_id or 0  # type: ignore[attr-defined]
    model.eval()
    with capture_layers(model, layers) as store, torch.inference_mode():
        for batch in length_batches(lengths, batch_tokens):
            width = max(lengths[i] for i in batch)
            input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            content = np.zeros((len(batch), width), dtype=np.float32)
            for row, index in enumerate(batch.tolist()):
                n = lengths[index]
                input_ids[row, :n] = ids[index]
                mask[row, :n] = 1.0
                content[row, :n] = 1.0 - np.asarray(special[index], dtype=np.float32)
            attention = torch.from_numpy(mask).to(device)
            with autocast(device, precision):
                outputs = model(
                    input_ids=torch.from_numpy(input_ids).to(device),
                    attention_mask=attention.long(),
                )
            weights = {"mean": attention, "mean_nospecial": torch.from_numpy(content).to(device)}
            # Sums in float32 even under bf16 autocast; a sentence with no content tokens (empty
            # string) gets the zero vector rather than a division by zero.
            counts = {k: w.sum(dim=1, keepdim=True).clamp_min(1.0) for k, w in weights.items()}
            pooled = []
            for kind, layer in parsed:
                if kind == "pooler":
                    pooler_output = getattr(outputs, "pooler_output", None)
                    if pooler_output is None:
                        raise ValueError(
                            f"{type(model).__name__} has no pooler; drop the 'pooler' pooling"
                        )
                    pooled.append(pooler_output.float())
                    continue
                hidden = store[layer].float()
                if kind == "cls":
                    pooled.append(hidden[:, 0])
                else:
                    summed = torch.einsum("bt,btd->bd", weights[kind], hidden)
                    pooled.append(summed / counts[kind])
            out[:, batch] = torch.stack(pooled).cpu().numpy()
            if progress is not None:
                progress(len(batch))
    return out


def pool(base: np.ndarray, features: Sequence[str], pooling: Pooling) -> np.ndarray:
    """The sentence vectors of ``pooling`` from base vectors.

    Parameters
    ----------
    base : array of shape (n_features, n_sentences, d_model) from :func:`encode_sentences`.
    features : the feature name of each row of ``base``.

    Returns
    -------
    float32 array of shape (n_sentences, d_model): the mean of the pooling's base vectors.
    """
    rows = [list(features).index(f) for f in pooling.features]
    stacked = np.asarray(base[rows], dtype=np.float32)
    return stacked.mean(axis=0)


def sentence_vectors(
    model: nn.Module,
    tokenizer: object,
    sentences: Sequence[str],
    poolings: Sequence[str | Pooling],
    **kwargs: object,
) -> dict[str, np.ndarray]:
    """Sentence vectors for each pooling in one pass: ``{spec: array (n_sentences, d_model)}``.

    Keyword arguments go to :func:`encode_sentences` (``batch_tokens``, ``max_length``, ...).
    """
    n_layers = int(model.config.num_hidden_layers)
    resolved = [p if isinstance(p, Pooling) else resolve_pooling(p, n_layers) for p in poolings]
    features = list(dict.fromkeys(f for p in resolved for f in p.features))
    base = encode_sentences(model, tokenizer, sentences, features, **kwargs)  # type: ignore[arg-type]
    return {p.spec: pool(base, features, p) for p in resolved}
