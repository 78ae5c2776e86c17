"""Control tasks (Hewitt & Liang, 2019): is a probe reading the representation or memorising?

A control task gives every word *type* (or span, or pair, as a tuple) a fixed random label drawn
from the empirical label distribution of the real task's training data. The labels carry no
linguistic information, but a probe that can identify types from the representation can still
learn them by memorisation. *Selectivity* = real-task accuracy - control-task accuracy; a probe is
only evidence about the representation when its selectivity is high.

The label of a type is a deterministic function of ``(seed, type)``: a stable hash (BLAKE2b of the
type's ``repr``, not Python's per-process randomised ``hash``) gives a uniform number that is
mapped through the cumulative label distribution. So the same type gets the same control label in
train, dev and test, in every process, and types first seen at dev or test time get one from the
same distribution without refitting.

Examples
--------
>>> task = ControlTask(seed=0).fit(["the", "dog", "the", "ran"], ["DET", "NOUN", "DET", "VERB"])
>>> labels = task.transform(["the", "the", "cat"])
>>> bool(labels[0] == labels[1])
True
>>> sorted(task.classes_.tolist())
['DET', 'NOUN', 'VERB']
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

_HASH_BYTES = 8  # 64-bit uniform numbers: ample resolution for any label distribution


def _canonical(value: Hashable) -> Hashable:
    """Python builtins for numpy scalars (``np.str_('a')`` and ``'a'`` must hash alike)."""
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def stable_uniform(seed: int, type_: Hashable) -> float:
    """A number in [0, 1) that depends only on ``seed`` and ``type_``, in every process.

    Parameters
    ----------
    seed : int
    type_ : hashable
        A word (str), or a tuple for spans and pairs; numpy scalars count as their Python value.

    Returns
    -------
    float
    """
    key = f"{int(seed)}\x1f{_canonical(type_)!r}".encode()
    digest = hashlib.blake2b(key, digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big") / 2.0 ** (8 * _HASH_BYTES)


class ControlTask(BaseEstimator):
    """Random but consistent labels per type, drawn from the training label distribution.

    Parameters
    ----------
    seed : int
        Different seeds give independent control tasks (report several).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Labels seen in training, sorted.
    class_prior_ : ndarray of shape (n_classes,)
        Their relative frequencies in the training labels (per token, as in Hewitt & Liang).
    type_labels_ : dict
        The control label of every type seen in training.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, types: Iterable[Hashable], labels) -> ControlTask:
        """Learn the label distribution and label every training type.

        Parameters
        ----------
        types : iterable of hashable, length n_samples
            The type of each training item: a word string, or a tuple for spans and pairs.
        labels : array-like of shape (n_samples,)
            The real task's training labels (ints or strings).

        Returns
        -------
        self
        """
        types = list(types)
        labels = np.asarray(labels)
        if labels.shape != (len(types),):
            raise ValueError(
                f"labels must have shape ({len(types)},) like types, got {labels.shape}"
            )
        if not types:
            raise ValueError("cannot fit a control task on zero items")
        self.classes_, counts = np.unique(labels, return_counts=True)
        self.class_prior_ = counts / counts.sum()
        self._cdf = np.cumsum(self.class_prior_)
        unique_types = dict.fromkeys(_canonical(t) for t in types)
        drawn = self._draw(unique_types)
        self.type_labels_ = dict(zip(unique_types, drawn.tolist(), strict=True))
        return self

    def _draw(self, types: Iterable[Hashable]) -> np.ndarray:
        u = np.array([stable_uniform(self.seed, t) for t in types], dtype=np.float64)
        # Inverse-CDF sampling; the clip guards against the last cumsum entry being < 1.0.
        index = np.searchsorted(self._cdf, u, side="right").clip(max=len(self.classes_) - 1)
        return self.classes_[index]

    def transform(self, types: Iterable[Hashable]) -> np.ndarray:
        """Control labels for ``types`` (seen or not at fit time).

        Parameters
        ----------
        types : iterable of hashable, length n

        Returns
        -------
        ndarray of shape (n,)
            Same dtype as the training labels.
        """
        check_is_fitted(self, "classes_")
        return self._draw(_canonical(t) for t in types)

    def fit_transform(self, types: Iterable[Hashable], labels) -> np.ndarray:
        """``fit(types, labels).transform(types)``."""
        types = list(types)
        return self.fit(types, labels).transform(types)
