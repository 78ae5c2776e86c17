"""How isotropic a set of sentence vectors is: do they spread over all directions, or crowd into a
narrow cone (Ethayarajh 2019) dominated by a few principal directions (Mu & Viswanath 2018)?

Two measures, each a number per set of vectors:

``avg_cosine``
    The mean cosine similarity of two different vectors drawn at random. Computed exactly over all
    ``n (n - 1)`` ordered pairs, not sampled: with unit vectors ``u_i``,
    ``sum_{i != j} u_i . u_j = |sum_i u_i|^2 - n``. Near 0 for isotropic vectors; raw BERT-style
    vectors give 0.3-0.9.
``top{k}_variance_share``
    Share of the total variance (trace of the covariance) along the top ``k`` principal directions
    (PCA, i.e. after centering). ``k / d`` for perfectly isotropic vectors in ``d`` dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["average_cosine", "isotropy", "variance_shares"]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    # A zero vector (e.g. mean over no tokens) has no direction; it contributes cosine 0.
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def average_cosine(X: np.ndarray) -> float:
    """Mean cosine similarity over all pairs of distinct rows of ``X`` (n_samples, n_features).

    >>> round(average_cosine(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])), 6)  # (0+.707+.707)/3
    0.471405
    """
    n = len(X)
    if n < 2:
        raise ValueError(f"average cosine needs at least 2 vectors, got {n}")
    units = _unit_rows(X)
    total = units.sum(axis=0)
    self_terms = float((units * units).sum())  # n, minus any zero rows
    return float((total @ total - self_terms) / (n * (n - 1)))


def variance_shares(X: np.ndarray, top_k: Sequence[int] = (1, 10)) -> dict[int, float]:
    """Share of total variance in the top ``k`` principal directions, for each ``k`` in ``top_k``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    top_k : ints; a ``k`` above the number of directions gives 1.0.

    Returns
    -------
    dict mapping k to a share in [0, 1].
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        raise ValueError(f"variance shares need at least 2 vectors, got {len(X)}")
    # Eigenvalues of the (d, d) covariance: the PCA variances, at n d^2 cost instead of an SVD of
    # the (n, d) data; tiny negative round-off is clipped.
    variances = np.clip(np.linalg.eigvalsh(np.atleast_2d(np.cov(X, rowvar=False))), 0.0, None)[::-1]
    total = variances.sum()
    if total <= 0:
        return {int(k): 1.0 for k in top_k}
    cumulative = np.cumsum(variances) / total
    return {int(k): float(cumulative[min(int(k), len(cumulative)) - 1]) for k in top_k}


def isotropy(X: np.ndarray, top_k: Sequence[int] = (1, 10)) -> dict[str, float]:
    """All isotropy measures of ``X`` as ``{metric name: value}``.

    >>> rng = np.random.default_rng(0)
    >>> sorted(isotropy(rng.normal(size=(100, 5)), top_k=[1]))
    ['avg_cosine', 'top1_variance_share']
    """
    result = {"avg_cosine": average_cosine(X)}
    for k, share in variance_shares(X, top_k).items():
        result[f"top{k}_variance_share"] = share
    return result
