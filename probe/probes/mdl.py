"""Online code length of a probing task, per layer: MDL probing (Voita & Titov, 2020).

How many bits does a receiver who already has the representations need to receive the labels?
With the *online* (prequential) code, the training items are put in a random order and cut at
the timestamps ``t_1 < t_2 < ... < t_T = N`` (fractions :data:`VOITA_TIMESTAMPS` of the
sentences: 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25, 12.5, 25, 50 and 100 %). The first block is sent
with the uniform code, ``t_1 log2 K`` bits; every later block ``(t_i, t_{i+1}]`` is sent with the
probe trained on everything before it, ``sum -log2 p(y_j | x_j)`` bits. The total is the
*codelength*; ``compression = N log2 K / codelength`` (1 = no better than uniform). A
representation that *encodes* a property gives a short code already from small blocks; one on
which a probe can only *memorise* the labels (a control task) gives a long one, even where the
final accuracies are close. *Selectivity in bits* = control codelength - task codelength.

The probe of every block is the batched all-layer logistic regression of
:mod:`probe.probes.linear` (all layers and the L2 grid in one job), with

* all ``K`` classes modelled (``all_classes=True``): an early block misses rare classes, and a
  probe that gives them probability 0 would need infinitely many bits when they first occur;
* the L2 strength chosen per block and layer on the dev split by **log-loss** (``select=
  "log_loss"``), the analogue of the reference's early stopping on dev loss: code lengths are
  log-losses, so accuracy is the wrong criterion;
* warm starts only along the regularisation path within a block (as for every probe). Starting
  each block's fit from the previous block's solution was measured and saves nothing (UD EWT
  UPOS, 1000 sentences, MiniLM: 69 s either way; the data double from block to block, so the
  optimum moves as far as a cold path has to travel), so each block is a fresh, cold fit, as in
  the reference code. The prefixes sum to about twice the training set.
* ``tol=1e-3`` in the stage (:mod:`probe.probes.mdl_stage`): code lengths within 0.5 % of
  ``tol=1e-4`` on every layer (largest difference 0.05 of 9-19 kbits), 1.6x faster.

Where this differs from the reference code (lena-voita/description-length-probing) and why is
listed in the README ("MDL probes"): bits throughout (the reference adds block losses in nats to
a first block in bits), kbits of 1000 bits (the reference divides by 1024), a convex L2 probe
instead of an MLP trained by Adam with early stopping.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 4, 4000)
>>> X = (np.eye(4)[y] * 4 + rng.normal(size=(4000, 4)))[None].astype(np.float32)
>>> code = online_codelength(X, y, np.arange(4000), X[:, :500], y[:500], n_classes=4,
...                          device="cpu")
>>> bool(code.compression[0] > 4)   # the labels cost far less than 2 bits each
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probe.probes.linear import DEFAULT_CS, fit_layerwise_logistic
from probe.runtime import resolve_device

__all__ = ["VOITA_TIMESTAMPS", "OnlineCode", "online_codelength", "timestamp_boundaries"]

#: Fractions of the (shuffled) training sentences at which blocks end (Voita & Titov 2020, §3.2).
VOITA_TIMESTAMPS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0)

_LOG2E = 1.0 / math.log(2.0)


@dataclass
class OnlineCode:
    """The online code of one task on every layer; code lengths in bits.

    Attributes
    ----------
    codelength : ndarray of shape (n_layers,)
        ``first_block_bits + block_bits.sum(1)``.
    block_bits : ndarray of shape (n_layers, n_blocks - 1)
        Bits of block ``i + 1`` under the probe trained on blocks ``0..i``.
    first_block_bits : float
        ``block_ends[0] * log2(n_classes)``: the first block, sent with the uniform code.
    uniform_codelength : float
        ``n_items * log2(n_classes)``: every label sent with the uniform code.
    block_ends : ndarray of int, shape (n_blocks,)
        Items (targets) in each prefix; ``block_ends[-1] = n_items``.
    sentence_ends : ndarray of int, shape (n_blocks,)
        Sentences in each prefix (the timestamps are fractions of sentences).
    fractions : tuple of float
        The timestamps.
    C : ndarray of shape (n_layers, n_blocks - 1)
        L2 strength chosen on dev for the probe that encodes each block.
    n_classes : int
    """

    codelength: np.ndarray
    block_bits: np.ndarray
    first_block_bits: float
    uniform_codelength: float
    block_ends: np.ndarray
    sentence_ends: np.ndarray
    fractions: tuple[float, ...]
    C: np.ndarray
    n_classes: int

    @property
    def compression(self) -> np.ndarray:
        """``uniform_codelength / codelength``, shape (n_layers,)."""
        return self.uniform_codelength / self.codelength


def timestamp_boundaries(n_sentences: int, fractions: Sequence[float] = VOITA_TIMESTAMPS):
    """Sentences in each prefix: ``int(f * n_sentences)`` for every timestamp ``f``.

    As in the reference code (``int(fraction * total_len)``), so the blocks are the same.

    Raises
    ------
    ValueError
        Fractions not increasing in (0, 1] or not ending at 1, or a first block without any
        sentence (too little training data for these timestamps).

    Examples
    --------
    >>> timestamp_boundaries(12544).tolist()
    [12, 25, 50, 100, 200, 401, 784, 1568, 3136, 6272, 12544]
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size < 2 or np.any(np.diff(f) <= 0) or f[0] <= 0 or f[-1] != 1.0:
        raise ValueError(
            f"timestamps must increase within (0, 1] and end at 1, got {list(fractions)}"
        )
    ends = (f * n_sentences).astype(np.int64)
    if ends[0] < 1:
        raise ValueError(
            f"the first block ({f[0]:g} of {n_sentences} sentences) is empty: online coding "
            f"needs at least {math.ceil(1 / f[0])} training sentences; raise the train limit"
        )
    return ends


def _block_bits(X_block, y_block: np.ndarray, coef: np.ndarray, intercept: np.ndarray, device):
    """``sum -log2 p(y | x)`` of one block for every layer, float64 of shape (n_layers,)."""
    n_layers = coef.shape[0]
    out = np.zeros(n_layers)
    if len(y_block) == 0:
        return out
    y_t = torch.from_numpy(np.ascontiguousarray(y_block, dtype=np.int64)).to(device)
    for li in range(n_layers):
        Xl = torch.from_numpy(np.asarray(X_block[li], dtype=np.float32)).to(device)
        W = torch.from_numpy(coef[li].T.copy()).to(device)
        b = torch.from_numpy(intercept[li].copy()).to(device)
        logp = torch.log_softmax(torch.addmm(b, Xl, W).double(), dim=1)
        out[li] = -float(logp.gather(1, y_t[:, None]).sum()) * _LOG2E
    return out


def online_codelength(
    X,
    y,
    groups,
    X_dev,
    y_dev,
    *,
    n_classes: int,
    fractions: Sequence[float] = VOITA_TIMESTAMPS,
    seed: int = 0,
    Cs: Sequence[float] | float = DEFAULT_CS,
    standardize: bool = False,
    tol: float = 1e-4,
    device: str | torch.device | None = None,
    n_jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> OnlineCode:
    """Online code length of labels ``y`` given features ``X``, for every layer.

    Parameters
    ----------
    X : array-like of shape (n_layers, n_items, n_features)
        Training features (float16 welcome; one reordered copy is made in its dtype).
    y : array-like of int of shape (n_items,)
        Labels in ``0..n_classes-1``.
    groups : array-like of int of shape (n_items,)
        Sentence of each item. Sentences, not items, are shuffled and cut into blocks (as in the
        reference code); items of a sentence stay together and in order.
    X_dev, y_dev : dev features and labels
        Used only to choose each block's L2 strength (lowest dev log-loss); dev items with a
        label outside ``0..n_classes-1`` are ignored there. Not part of the code.
    n_classes : int
        ``K`` of the uniform code: the size of the label set the receiver knows.
    fractions : sequence of float
        Timestamps as fractions of the sentences (default Voita & Titov's).
    seed : int
        Seeds the order of the sentences.
    Cs, standardize, tol, device, n_jobs
        As for :func:`probe.probes.linear.fit_layerwise_logistic`.
    progress : callable, optional
        ``progress(1)`` after each block's probe is fitted (``len(fractions) - 1`` in all).

    Returns
    -------
    OnlineCode
    """
    y = np.asarray(y, dtype=np.int64)
    groups = np.asarray(groups)
    n_layers, n_items = X.shape[0], X.shape[1]
    if y.shape != (n_items,) or groups.shape != (n_items,):
        raise ValueError(
            f"y and groups must have shape ({n_items},), got {y.shape} and {groups.shape}"
        )
    if n_classes < 2 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1} with n_classes >= 2")
    sentences, sentence_of_item = np.unique(groups, return_inverse=True)
    rank = np.random.default_rng(seed).permutation(len(sentences))
    item_rank = rank[sentence_of_item]
    order = np.argsort(item_rank, kind="stable")  # shuffled sentences, items in file order
    sentence_ends = timestamp_boundaries(len(sentences), fractions)
    block_ends = np.searchsorted(item_rank[order], sentence_ends, side="left")
    Xo = np.asarray(X)[:, order]
    yo = y[order]
    y_dev = np.asarray(y_dev, dtype=np.int64)

    n_blocks = len(sentence_ends)
    block_bits = np.zeros((n_layers, n_blocks - 1))
    chosen_C = np.full((n_layers, n_blocks - 1), np.nan)
    for i in range(n_blocks - 1):
        start, stop = int(block_ends[i]), int(block_ends[i + 1])
        fit = fit_layerwise_logistic(
            Xo[:, :start],
            yo[:start],
            X_dev,
            y_dev,
            Cs=Cs,
            n_classes=n_classes,
            standardize=standardize,
            tol=tol,
            device=device,
            n_jobs=n_jobs,
            all_classes=True,
            select="log_loss",
        )
        coef, intercept = fit.coef, fit.intercept
        if standardize:  # fold the standardisation into raw-feature weights for scoring
            coef = coef / fit.scale[:, None, :]
            intercept = intercept - np.einsum("lkd,ld->lk", coef, fit.mean)
        block_bits[:, i] = _block_bits(
            Xo[:, start:stop], yo[start:stop], coef, intercept, resolve_device(device, mps=False)
        )
        chosen_C[:, i] = fit.C
        if progress is not None:
            progress(1)
    log2k = math.log2(n_classes)
    first = float(block_ends[0]) * log2k
    return OnlineCode(
        codelength=first + block_bits.sum(axis=1),
        block_bits=block_bits,
        first_block_bits=first,
        uniform_codelength=float(n_items) * log2k,
        block_ends=block_ends,
        sentence_ends=sentence_ends,
        fractions=tuple(float(f) for f in fractions),
        C=chosen_C,
        n_classes=n_classes,
    )
