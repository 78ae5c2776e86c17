"""Structural probes (Hewitt & Manning, 2019): is a dependency tree a linear map away?

A *distance probe* learns ``B`` (``d_model x rank``) such that the squared distance
``||B^T (h_i - h_j)||^2`` between two words' vectors matches the number of edges between them in
the parse tree; a *depth probe* learns ``B`` such that ``||B^T h_i||^2`` matches the word's depth.
The losses are the paper's L1 losses, normalised within each sentence by its squared length
(distances) or its length (depths), then averaged over the sentences of a batch.

Training follows the reference code (john-hewitt/structural-probes, ``regimen.py``): ``B``
initialised uniformly in [-0.05, 0.05], Adam with learning rate 1e-3 on batches of 20 sentences,
the learning rate divided by 10 each epoch the dev loss does not improve, the parameters of the
best dev epoch kept, and training stopped after 5 epochs without improvement (or at
``max_epochs``). Here every layer is fitted in the same pass: one ``B`` per layer, stacked, each
with its own learning rate, best epoch and stop, so the layers remain independent problems that
share only the batching (the word vectors of a batch are read once for all layers).

Metrics of the predictions are in :mod:`probe.probes.trees`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from probe.probes.linear import _torch_threads
from probe.runtime import resolve_device

__all__ = ["StructuralFit", "fit_structural_probes", "predict_structure"]

Kind = Literal["distance", "depth"]
_IMPROVEMENT = 1e-4  # the reference's "dev loss must improve by more than this" threshold
_PATIENCE = 4  # epochs after the best one before stopping (the reference stops at the 5th)
_LR_DECAY = 0.1


@dataclass
class StructuralFit:
    """What :func:`fit_structural_probes` learned.

    Attributes
    ----------
    B : ndarray of shape (n_layers, d_model, rank), float32
        Each layer's probe at its best dev epoch.
    dev_loss : ndarray of shape (n_layers,)
        Best dev loss per layer.
    best_epoch : ndarray of int, shape (n_layers,)
    epochs : int
        Epochs run (until every layer stopped, or ``max_epochs``).
    history : ndarray of shape (epochs, n_layers)
        Dev loss after every epoch.
    """

    B: np.ndarray
    dev_loss: np.ndarray
    best_epoch: np.ndarray
    epochs: int
    history: np.ndarray


@dataclass
class _Batches:
    """Sentences of one split as padded batches: word rows, positions and gold targets."""

    words: torch.Tensor  # (n_layers, n_words, d), float16 or float32, on the device
    offsets: np.ndarray  # (n_sentences + 1,)
    gold: list[np.ndarray]  # per sentence: (n, n) distances or (n,) depths
    kind: Kind

    def batch(self, sentences: np.ndarray, device: torch.device):
        """``(H (L, b, T, d) float32, gold (b, T[, T]), mask (b, T[, T]), lengths (b,))``."""
        lengths = np.diff(self.offsets)[sentences]
        T = int(lengths.max())
        b = len(sentences)
        rows = np.concatenate([np.arange(self.offsets[s], self.offsets[s + 1]) for s in sentences])
        slot = np.concatenate([i * T + np.arange(n) for i, n in enumerate(lengths)])
        L, _, d = self.words.shape
        H = torch.zeros((L, b * T, d), dtype=torch.float32, device=device)
        H[:, torch.from_numpy(slot).to(device)] = self.words[:, torch.from_numpy(rows)].to(
            device=device, dtype=torch.float32
        )
        shape = (b, T, T) if self.kind == "distance" else (b, T)
        gold = np.zeros(shape, dtype=np.float32)
        mask = np.zeros(shape, dtype=np.float32)
        for i, s in enumerate(sentences):
            n = lengths[i]
            index = (i, slice(0, n), slice(0, n)) if self.kind == "distance" else (i, slice(0, n))
            gold[index] = self.gold[s]
            mask[index] = 1.0
        return (
            H.view(L, b, T, d),
            torch.from_numpy(gold).to(device),
            torch.from_numpy(mask).to(device),
            torch.from_numpy(lengths.astype(np.float32)).to(device),
        )

    def __len__(self) -> int:
        return len(self.gold)


def _predict(H: torch.Tensor, B: torch.Tensor, kind: Kind) -> torch.Tensor:
    """Squared distances (L, b, T, T) or squared norms (L, b, T) of the projected vectors."""
    P = H @ B[:, None]  # (L, b, T, rank)
    norms = P.square().sum(-1)
    if kind == "depth":
        return norms
    gram = P @ P.transpose(-1, -2)
    return (norms[..., :, None] + norms[..., None, :] - 2.0 * gram).clamp_min(0.0)


def _loss(pred: torch.Tensor, gold: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor):
    """Per-layer L1 loss, shape (L,): per sentence / length^p (p = 2 distance, 1 depth), mean."""
    err = (pred - gold).abs() * mask
    if pred.dim() == 4:
        per_sentence = err.sum((-1, -2)) / lengths.square()
    else:
        per_sentence = err.sum(-1) / lengths
    return per_sentence.mean(-1)


def _batches_of(n: int, size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    order = np.arange(n) if rng is None else rng.permutation(n)
    for start in range(0, n, size):
        yield order[start : start + size]


def _as_tensor(X) -> torch.Tensor:
    """All layers' word vectors as a CPU tensor, kept in float16 when given float16 (memory)."""
    array = np.asarray(X)
    if array.dtype not in (np.float16, np.float32):
        array = array.astype(np.float32)
    if not array.flags.writeable:  # a read-only cache memmap: torch wants its own copy
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def _dev_loss(data: _Batches, B: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    total = torch.zeros(B.shape[0], dtype=torch.float64, device=device)
    with torch.no_grad():
        for sentences in _batches_of(len(data), batch_size, None):
            H, gold, mask, lengths = data.batch(sentences, device)
            total += _loss(_predict(H, B, data.kind), gold, mask, lengths).double() * len(sentences)
    return total / len(data)


def fit_structural_probes(
    X,
    offsets: np.ndarray,
    gold: Sequence[np.ndarray],
    X_dev,
    offsets_dev: np.ndarray,
    gold_dev: Sequence[np.ndarray],
    *,
    kind: Kind,
    rank: int = 64,
    batch_size: int = 20,
    max_epochs: int = 40,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Callable[[int], None] | None = None,
) -> StructuralFit:
    """Fit a distance or depth probe on every layer at once.

    Parameters
    ----------
    X : array-like of shape (n_layers, n_words, d_model)
        Word vectors of the training sentences, sentence ``s`` at ``offsets[s]:offsets[s+1]``.
    offsets : int array of shape (n_sentences + 1,)
    gold : sequence of ndarray
        Per sentence: tree distances (n, n) for ``kind="distance"``, depths (n,) for ``"depth"``.
    X_dev, offsets_dev, gold_dev
        The same for the dev split (early stopping and learning-rate decay).
    kind : {"distance", "depth"}
    rank : int
        Columns of ``B`` (the paper finds about 64 enough for BERT).
    batch_size, max_epochs, lr : int, int, float
        Sentences per Adam step, epoch cap, initial learning rate (reference: 20, 40, 1e-3).
    seed : int
        Seeds the initialisation and the order of the batches.
    device : optional
        Default CUDA when available, else CPU.
    progress : callable, optional
        ``progress(1)`` after every epoch.

    Returns
    -------
    StructuralFit
    """
    if kind not in ("distance", "depth"):
        raise ValueError(f"kind must be 'distance' or 'depth', got {kind!r}")
    dev = resolve_device(device, mps=False)
    train = _Batches(_as_tensor(X), np.asarray(offsets), list(gold), kind)
    held = _Batches(_as_tensor(X_dev), np.asarray(offsets_dev), list(gold_dev), kind)
    for name, data in (("train", train), ("dev", held)):
        if len(data) != len(data.offsets) - 1 or data.offsets[-1] != data.words.shape[1]:
            raise ValueError(
                f"{name}: {len(data)} gold entries and offsets for {len(data.offsets) - 1} "
                f"sentences over {data.words.shape[1]} words do not match"
            )
    n_layers, _, d = train.words.shape
    generator = torch.Generator().manual_seed(seed)
    init = torch.empty((n_layers, d, rank)).uniform_(-0.05, 0.05, generator=generator)
    params = [torch.nn.Parameter(init[li].clone().to(dev)) for li in range(n_layers)]
    optimizer = torch.optim.Adam([{"params": [p], "lr": lr} for p in params])
    rng = np.random.default_rng(seed)
    # On CPU, one intra-op thread: the operations are small, and intra-op threads meet at a
    # barrier after each one, which on a busy machine costs more than the work (measured).
    with _torch_threads(1 if dev.type == "cpu" else None):
        return _train(params, optimizer, train, held, rng, batch_size, max_epochs, dev, progress)


def _train(params, optimizer, train, held, rng, batch_size, max_epochs, dev, progress):
    """The epoch loop of :func:`fit_structural_probes` (per-layer decay, best state, stop)."""
    n_layers, kind = len(params), train.kind
    best = np.full(n_layers, np.inf)
    best_epoch = np.full(n_layers, -1)
    best_B = [p.detach().clone() for p in params]
    stopped = np.zeros(n_layers, dtype=bool)
    history = []
    epoch = 0
    for epoch in range(max_epochs):
        for sentences in _batches_of(len(train), batch_size, rng):
            H, target, mask, lengths = train.batch(sentences, dev)
            optimizer.zero_grad(set_to_none=True)
            B = torch.stack(params)
            # Layers are independent: the sum's gradient w.r.t. B_l is layer l's own gradient.
            _loss(_predict(H, B, kind), target, mask, lengths).sum().backward()
            optimizer.step()
        losses = _dev_loss(held, torch.stack(params).detach(), batch_size, dev).cpu().numpy()
        history.append(losses)
        for li in np.flatnonzero(~stopped):
            if losses[li] < best[li] - _IMPROVEMENT:
                best[li], best_epoch[li] = losses[li], epoch
                best_B[li] = params[li].detach().clone()
            else:
                optimizer.param_groups[li]["lr"] *= _LR_DECAY
                if epoch - best_epoch[li] > _PATIENCE:
                    stopped[li] = True
                    optimizer.param_groups[li]["lr"] = 0.0
        if progress is not None:
            progress(1)
        if stopped.all():
            break
    return StructuralFit(
        B=torch.stack(best_B).cpu().numpy(),
        dev_loss=best,
        best_epoch=best_epoch,
        epochs=epoch + 1,
        history=np.array(history),
    )


def predict_structure(
    X,
    offsets: np.ndarray,
    B: np.ndarray,
    *,
    kind: Kind,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> list[np.ndarray]:
    """Per sentence: predicted squared distances (n_layers, n, n) or depths (n_layers, n).

    Parameters
    ----------
    X : array-like of shape (n_layers, n_words, d_model)
    offsets : int array of shape (n_sentences + 1,)
    B : ndarray of shape (n_layers, d_model, rank)
    kind : {"distance", "depth"}
    """
    dev = resolve_device(device, mps=False)
    offsets = np.asarray(offsets)
    lengths = np.diff(offsets)
    dummy = [np.zeros((n, n) if kind == "distance" else n) for n in lengths]
    data = _Batches(_as_tensor(X), offsets, dummy, kind)
    Bt = torch.from_numpy(np.asarray(B, dtype=np.float32)).to(dev)
    out: list[np.ndarray] = []
    with torch.no_grad():
        for sentences in _batches_of(len(data), batch_size, None):
            H, _, _, _ = data.batch(sentences, dev)
            pred = _predict(H, Bt, kind).cpu().numpy()
            for i, s in enumerate(sentences):
                n = lengths[s]
                out.append((pred[:, i, :n, :n] if kind == "distance" else pred[:, i, :n]).copy())
    return out
