"""BERT-whitening (Su et al. 2021): a linear map that gives sentence vectors zero mean and identity
covariance, optionally keeping only the top-``k`` principal directions.

The transform, exactly as in the paper and its reference code (``compute_kernel_bias`` in
github.com/bojone/BERT-whitening)::

    mu    = mean(X)                      # (d,)
    Sigma = cov(X)                       # (d, d), ddof=1 as np.cov
    U, s, _ = svd(Sigma)                 # s sorted descending
    W     = U diag(1 / sqrt(s))          # (d, d)
    y     = (x - mu) W[:, :k]            # keep the first k columns

Centering only (``whiten=False``) is the ablation ``y = x - mu``: it removes the common direction
that makes raw BERT vectors anisotropic, without rescaling.

Written by hand rather than with ``sklearn.decomposition.PCA(whiten=True)``, which computes the
same subspace but from an SVD of the data with sign-flipped axes (``svd_flip``); writing the
paper's formula keeps the vectors identical to the reference implementation (a test pins this).
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["Whitening", "parse_variant", "whitening_kernel"]

# Eigenvalues below this fraction of the largest are treated as this fraction: mean-pooled LayerNorm
# outputs lie in an affine subspace (each LayerNorm output sums to a constant before the affine
# map), so their covariance is singular and 1/sqrt(0) would be infinite. Far below any real
# direction's variance, so the transform of non-degenerate data is unchanged.
_EIGENVALUE_FLOOR = 1e-12

_VARIANT = re.compile(r"^(raw|center|whiten)(?:-([1-9][0-9]*))?$")


def parse_variant(name: str) -> tuple[str, int | None]:
    """Split a whitening variant name into ``(kind, n_components)``.

    ``raw`` (no transform), ``center`` (subtract the mean), ``whiten`` (all components) and
    ``whiten-<k>`` (top ``k``).

    >>> parse_variant("whiten-256")
    ('whiten', 256)
    >>> parse_variant("center")
    ('center', None)
    """
    match = _VARIANT.fullmatch(name.strip())
    if match is None or (match.group(2) is not None and match.group(1) != "whiten"):
        raise ValueError(
            f"whitening variant {name!r} is not one of raw, center, whiten, whiten-<k> "
            "(e.g. whiten-256)"
        )
    return match.group(1), int(match.group(2)) if match.group(2) else None


def whitening_kernel(
    X: np.ndarray, n_components: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, principal axes and variances of ``X``: the pieces of the whitening map.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    n_components : int, optional
        Number of leading directions to keep; all ``n_features`` when None.

    Returns
    -------
    mean : array of shape (n_features,)
    components : array of shape (n_components, n_features)
        Rows are the left singular vectors of the covariance (columns of ``U``), largest first.
    variance : array of shape (n_components,)
        The corresponding singular values ``s`` of the covariance.
    kernel : array of shape (n_features, n_components)
        ``W[:, :k] = U[:, :k] diag(1 / sqrt(s[:k]))``.
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    if n_samples < 2:
        raise ValueError(f"whitening needs at least 2 vectors, got {n_samples}")
    k = n_features if n_components is None else int(n_components)
    if not 1 <= k <= n_features:
        raise ValueError(f"n_components must be in 1..{n_features} (the vector size), got {k}")
    mean = X.mean(axis=0)
    cov = np.cov(X, rowvar=False)  # ddof=1, as the reference code
    U, s, _ = np.linalg.svd(cov)
    s = np.maximum(s, s[0] * _EIGENVALUE_FLOOR) if s[0] > 0 else np.ones_like(s)
    kernel = U[:, :k] / np.sqrt(s[:k])
    return mean, U[:, :k].T.copy(), s[:k].copy(), kernel


class Whitening:
    """BERT-whitening as a scikit-learn style transformer.

    Parameters
    ----------
    n_components : int, optional
        Keep the top ``k`` directions (``whiten-k``); None keeps all (``whiten``).
    whiten : bool
        False gives the centering-only ablation (``center``); ``n_components`` must then be None.

    Attributes
    ----------
    mean_ : array of shape (n_features,)
    components_ : array of shape (n_components_, n_features)
        Principal axes (rows), largest variance first; identity for ``whiten=False``.
    explained_variance_ : array of shape (n_components_,)
        Variance along each axis (singular values of the covariance).
    kernel_ : array of shape (n_features, n_components_)
        The matrix ``W`` of ``y = (x - mean_) @ W``.
    n_features_in_, n_components_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8))
    >>> Y = Whitening().fit_transform(X)
    >>> bool(np.allclose(np.cov(Y, rowvar=False), np.eye(8), atol=1e-8))
    True
    >>> Whitening(n_components=3).fit(X).transform(X).shape
    (500, 3)
    """

    def __init__(self, n_components: int | None = None, *, whiten: bool = True) -> None:
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, X: np.ndarray, y: object = None) -> Whitening:
        """Estimate the mean and whitening kernel from ``X`` of shape (n_samples, n_features)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        if self.whiten:
            mean, components, variance, kernel = whitening_kernel(X, self.n_components)
        else:
            if self.n_components is not None:
                raise ValueError(
                    "centering (whiten=False) keeps every dimension; drop n_components"
                )
            mean = X.mean(axis=0)
            components = kernel = np.eye(X.shape[1])
            variance = np.var(X, axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = variance
        self.kernel_ = kernel
        self.n_features_in_ = X.shape[1]
        self.n_components_ = kernel.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map ``X`` of shape (n_samples, n_features) to shape (n_samples, n_components_)."""
        if not hasattr(self, "mean_"):
            raise RuntimeError("this Whitening is not fitted yet; call fit(X) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n_samples, {self.n_features_in_}), got {X.shape}")
        centered = X - self.mean_
        return centered if not self.whiten else centered @ self.kernel_

    def fit_transform(self, X: np.ndarray, y: object = None) -> np.ndarray:
        return self.fit(X).transform(X)

    def truncate(self, n_components: int) -> Whitening:
        """A fitted copy that keeps only the first ``n_components`` directions.

        Equal to fitting ``Whitening(n_components)`` on the same data, without recomputing the
        covariance: ``W[:, :k]`` does not depend on ``k``. Lets one fit serve every ``whiten-k``.
        """
        if not hasattr(self, "mean_"):
            raise RuntimeError("this Whitening is not fitted yet; call fit(X) first")
        if not self.whiten:
            raise ValueError("a centering-only Whitening has no directions to drop")
        if not 1 <= n_components <= self.n_components_:
            raise ValueError(f"n_components must be in 1..{self.n_components_}, got {n_components}")
        head = Whitening(n_components=n_components)
        head.mean_ = self.mean_
        head.components_ = self.components_[:n_components]
        head.explained_variance_ = self.explained_variance_[:n_components]
        head.kernel_ = self.kernel_[:, :n_components]
        head.n_features_in_ = self.n_features_in_
        head.n_components_ = n_components
        return head

    def __repr__(self) -> str:
        return f"Whitening(n_components={self.n_components!r}, whiten={self.whiten!r})"

    @classmethod
    def from_variant(cls, name: str) -> Whitening | None:
        """The transformer for a variant name; None for ``raw`` (identity).

        >>> Whitening.from_variant("whiten-128")
        Whitening(n_components=128, whiten=True)
        """
        kind, k = parse_variant(name)
        if kind == "raw":
            return None
        return cls(n_components=k, whiten=kind == "whiten")
