"""Probe inputs for words, spans and span pairs, built from cached word vectors.

The activation cache stores one vector per word and layer: ``words`` of shape
``(n_layers, n_words_total, d_model)`` (often a float16 ``np.memmap``), with the words of sentence
``s`` at ``words[:, offsets[s]:offsets[s + 1]]``. A *target* is one row of an int array:
``(sentence, start_1, end_1, ..., start_k, end_k)``, spans as word indices within the sentence,
``end`` exclusive (Python slice convention).

A span is represented (Tenney et al., 2019; Lee et al., 2017) by

- ``"mean"``: the mean of its word vectors, ``d_model`` values,
- ``"endpoints"``: its first and last word vectors concatenated, ``2 * d_model`` values,

in the order given by ``how``. Everything is vectorised over targets: span means come from
differences of a cumulative sum, computed per block of whole sentences in float64 (a global
float32 cumulative sum over a million words would lose the low digits of a short span's mean),
and one layer at a time so memory stays at about one layer of output plus one block.

Examples
--------
>>> words = np.arange(2 * 5 * 1, dtype=np.float32).reshape(2, 5, 1)  # 2 layers, 5 words, d=1
>>> offsets = np.array([0, 3, 5])                                      # sentences of 3 and 2 words
>>> span_features(words, offsets, np.array([[0, 1, 3], [1, 0, 2]]), how=("mean",))[:, :, 0]
array([[1.5, 3.5],
       [6.5, 8.5]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from probe.errors import DataError

SPAN_POOLINGS = ("mean", "endpoints")

# Words per cumulative-sum block: 8192 x 1024 float64 = 64 MiB for BERT-large.
_BLOCK_WORDS = 8192


# --------------------------------------------------------------------------------------------
# private helpers
# --------------------------------------------------------------------------------------------


def _check_words(words, offsets) -> np.ndarray:
    if getattr(words, "ndim", None) != 3:
        raise ValueError(
            "words must have shape (n_layers, n_words_total, d_model), "
            f"got shape {getattr(words, 'shape', None)}"
        )
    offsets = np.asarray(offsets, dtype=np.int64)
    if (
        offsets.ndim != 1
        or offsets.shape[0] < 1
        or offsets[0] != 0
        or offsets[-1] != words.shape[1]
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError(
            "offsets must be non-decreasing, start at 0 and end at n_words_total = "
            f"{words.shape[1]}; got {offsets[:3].tolist()}...{offsets[-2:].tolist()} "
            f"(length {offsets.shape[0]})"
        )
    return offsets


def _check_how(how: Sequence[str]) -> tuple[str, ...]:
    how = (how,) if isinstance(how, str) else tuple(how)
    bad = [h for h in how if h not in SPAN_POOLINGS]
    if not how or bad:
        raise ValueError(f"how must be a non-empty subset of {SPAN_POOLINGS}, got {how}")
    return how


def _global_spans(targets, offsets: np.ndarray, n_spans: int) -> tuple[np.ndarray, np.ndarray]:
    """Check targets; return global word indices ``(starts, ends)``, each (n_targets, n_spans)."""
    targets = np.asarray(targets)
    width = 1 + 2 * n_spans
    if (
        targets.ndim != 2
        or targets.shape[1] != width
        or not np.issubdtype(targets.dtype, np.integer)
    ):
        raise ValueError(
            f"targets must be an integer array of shape (n_targets, {width}): sentence index, then "
            f"(start, end) per span; got dtype {targets.dtype} shape {targets.shape}"
        )
    targets = targets.astype(np.int64, copy=False)
    sentence = targets[:, 0]
    n_sentences = offsets.shape[0] - 1
    bad = (sentence < 0) | (sentence >= n_sentences)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"target {row} names sentence {sentence[row]} but there are {n_sentences} sentences; "
            "rebuild the targets from the same dataset as the activation cache"
        )
    starts, ends = targets[:, 1::2], targets[:, 2::2]
    length = (offsets[sentence + 1] - offsets[sentence])[:, None]
    bad = (starts < 0) | (ends <= starts) | (ends > length)
    if np.any(bad):
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(
            f"target {row} = {targets[row].tolist()} has an empty or out-of-range span for a "
            f"sentence of {int(length[row, 0])} words (spans are [start, end), end exclusive)"
        )
    base = offsets[sentence][:, None]
    return base + starts, base + ends


def _block_edges(offsets: np.ndarray, block_words: int) -> np.ndarray:
    """Word indices cutting the word axis into blocks of whole sentences (~block_words each)."""
    first_sentence_of_block = np.unique(offsets[:-1] // block_words, return_index=True)[1]
    return np.append(offsets[first_sentence_of_block], offsets[-1])


def _span_means(layer, starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``layer[start:end]`` for every span, shape (n_spans, d_model), float32.

    ``layer`` has shape (n_words_total, d_model); ``starts``/``ends`` are global and 1-D.
    """
    if np.all(ends - starts == 1):
        # One-word spans (dependency arcs): the mean is the word's vector. A float64 cumulative
        # sum of float16 values is exact, so this gather gives the same bits without it.
        return np.asarray(layer[starts], dtype=np.float32)
    out = np.empty((starts.shape[0], layer.shape[1]), dtype=np.float32)
    block = np.searchsorted(edges, starts, side="right") - 1
    order = np.argsort(block, kind="stable")
    bounds = np.searchsorted(block[order], np.arange(len(edges)))
    for b in range(len(edges) - 1):
        rows = order[bounds[b] : bounds[b + 1]]
        if rows.size == 0:
            continue
        lo, hi = edges[b], edges[b + 1]
        cumsum = np.zeros((hi - lo + 1, layer.shape[1]), dtype=np.float64)
        np.cumsum(layer[lo:hi], axis=0, dtype=np.float64, out=cumsum[1:])
        s, e = starts[rows] - lo, ends[rows] - lo
        out[rows] = (cumsum[e] - cumsum[s]) / (e - s)[:, None]
    return out


def _span_reprs(layer, starts, ends, how: tuple[str, ...], edges: np.ndarray) -> np.ndarray:
    """Span representations for one layer, shape (n_spans, D) with D = d * (1 or 2 or 3)."""
    parts = []
    for pooling in how:
        if pooling == "mean":
            parts.append(_span_means(layer, starts, ends, edges))
        else:  # endpoints
            parts.append(np.asarray(layer[starts], dtype=np.float32))
            parts.append(np.asarray(layer[ends - 1], dtype=np.float32))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _layerwise(words, starts, ends, how, product: bool, block_words: int, offsets) -> np.ndarray:
    """Core: (n_layers, n_targets, D_total) float32 for targets of one or two spans."""
    n_targets, n_spans = starts.shape
    d = words.shape[2]
    d_span = d * sum(1 if h == "mean" else 2 for h in how)
    d_total = d_span * n_spans + (d_span if product else 0)
    out = np.empty((words.shape[0], n_targets, d_total), dtype=np.float32)
    edges = _block_edges(offsets, block_words)
    # Spans are flattened span-major so that span k of every target is one contiguous slice.
    flat_starts, flat_ends = starts.T.ravel(), ends.T.ravel()
    for layer_index in range(words.shape[0]):
        reprs = _span_reprs(words[layer_index], flat_starts, flat_ends, how, edges)
        reprs = reprs.reshape(n_spans, n_targets, d_span)
        for k in range(n_spans):
            out[layer_index, :, k * d_span : (k + 1) * d_span] = reprs[k]
        if product:
            out[layer_index, :, n_spans * d_span :] = reprs[0] * reprs[1]
    return out


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def span_feature_dim(
    d_model: int, how: Sequence[str] = SPAN_POOLINGS, n_spans: int = 1, product: bool = False
) -> int:
    """Width ``D`` of the features :func:`span_features` / :func:`pair_features` return.

    >>> span_feature_dim(768), span_feature_dim(768, ("mean",), n_spans=2, product=True)
    (2304, 2304)
    """
    how = _check_how(how)
    d_span = d_model * sum(1 if h == "mean" else 2 for h in how)
    return d_span * n_spans + (d_span if product else 0)


def word_features(words, offsets, targets=None) -> np.ndarray:
    """Gather the vectors of single words.

    Parameters
    ----------
    words : array of shape (n_layers, n_words_total, d_model)
        May be a float16 ``np.memmap``; only the needed rows are read.
    offsets : int array of shape (n_sentences + 1,)
    targets : int array of shape (n_targets, 2) or (n_targets, 3), optional
        ``(sentence, word)`` rows, or ``(sentence, start, end)`` rows with ``end = start + 1``.
        ``None`` takes every word in cache order (e.g. for POS tagging).

    Returns
    -------
    ndarray of shape (n_layers, n_targets, d_model), float32
    """
    offsets = _check_words(words, offsets)
    if targets is None:
        return np.asarray(words, dtype=np.float32)
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[1] == 2:
        targets = np.column_stack([targets, targets[:, 1] + 1])
    starts, ends = _global_spans(targets, offsets, n_spans=1)
    if np.any(ends - starts != 1):
        row = int(np.flatnonzero(ends[:, 0] - starts[:, 0] != 1)[0])
        raise ValueError(f"word_features takes one-word targets; target {row} spans several words")
    index = starts[:, 0]
    out = np.empty((words.shape[0], index.shape[0], words.shape[2]), dtype=np.float32)
    for layer_index in range(words.shape[0]):
        out[layer_index] = words[layer_index][index]
    return out


def span_features(
    words, offsets, targets, how: Sequence[str] = SPAN_POOLINGS, *, block_words: int = _BLOCK_WORDS
) -> np.ndarray:
    """Represent one span per target.

    Parameters
    ----------
    words : array of shape (n_layers, n_words_total, d_model)
    offsets : int array of shape (n_sentences + 1,)
    targets : int array of shape (n_targets, 3)
        ``(sentence, start, end)`` with ``end`` exclusive.
    how : subset of ``("mean", "endpoints")``, in output order
    block_words : words per float64 cumulative-sum block (memory knob)

    Returns
    -------
    ndarray of shape (n_layers, n_targets, D), float32, ``D = span_feature_dim(d_model, how)``
    """
    offsets = _check_words(words, offsets)
    how = _check_how(how)
    starts, ends = _global_spans(targets, offsets, n_spans=1)
    return _layerwise(words, starts, ends, how, False, block_words, offsets)


def pair_features(
    words,
    offsets,
    targets,
    how: Sequence[str] = SPAN_POOLINGS,
    product: bool = False,
    *,
    block_words: int = _BLOCK_WORDS,
) -> np.ndarray:
    """Represent a pair of spans per target (relations, dependency arcs, coreference).

    The output is ``[repr(span_1), repr(span_2)]`` and, with ``product=True``, also their
    elementwise product ``repr(span_1) * repr(span_2)``, which lets a linear probe see
    multiplicative interactions between the two spans.

    Parameters
    ----------
    words : array of shape (n_layers, n_words_total, d_model)
    offsets : int array of shape (n_sentences + 1,)
    targets : int array of shape (n_targets, 5)
        ``(sentence, start_1, end_1, start_2, end_2)``, ends exclusive.
    how : subset of ``("mean", "endpoints")``, in output order
    product : also append the elementwise product of the two span representations
    block_words : words per float64 cumulative-sum block (memory knob)

    Returns
    -------
    ndarray of shape (n_layers, n_targets, D), float32,
    ``D = span_feature_dim(d_model, how, n_spans=2, product=product)``
    """
    offsets = _check_words(words, offsets)
    how = _check_how(how)
    starts, ends = _global_spans(targets, offsets, n_spans=2)
    return _layerwise(words, starts, ends, how, product, block_words, offsets)


__all__ = [
    "SPAN_POOLINGS",
    "pair_features",
    "span_feature_dim",
    "span_features",
    "word_features",
]
