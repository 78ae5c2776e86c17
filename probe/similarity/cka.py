"""Linear CKA (Kornblith et al. 2019) between layers, streamed over any number of tokens.

Two estimators of CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels
K = X Xᵀ, L = Y Yᵀ over n rows (words or tokens):

- ``biased``: Kornblith et al.'s HSIC_0 = tr(K H L H) / (n-1)², i.e. ‖X_cᵀ Y_c‖²_F on centred
  features. It is inflated at small n: two *independent* random matrices of shape (n, d) score
  about d / (n + d) (printed beside every result as the random baseline).
- ``unbiased``: the debiased HSIC_1 of Song et al. 2012 (used by Nguyen et al. 2021 and in
  Kornblith et al.'s ``feature_space_linear_cka(debiased=True)``); its expectation is 0 for
  independent inputs, so it can be slightly negative.

Both are computed in the *feature* space: every term of the Gram-matrix formulas reduces to sums
over rows of d × d products (``X_aᵀ X_b``), row norms and their products, so one pass over the rows
in minibatches yields the exact full-sample estimators in O(d²) memory, with all layer pairs of
two models at once. (Nguyen et al.'s minibatch CKA instead averages HSIC_1 over n × n Gram matrices
of each minibatch; that is a noisier estimator of the same quantity, not the full-sample one.)

Why by hand: the CKA packages on PyPI (checked 2026-12: ``ckatorch`` 1.0.3, ``pytorch-cka``
1.1.3, ``torch-cka`` 0.21) all build n × n Gram matrices per minibatch, so they give the minibatch
average rather than the full-sample estimate; ``pytorch-cka`` clamps CKA into [0, 1], which hides
exactly the negative values the unbiased estimator must be allowed to take on independent inputs;
``ckatorch``'s minibatch path has no biased estimator; none reads features from an array on disk.
The identities used here are a few lines each and ``tests/test_similarity_cka.py`` checks them
against the direct n × n Gram-matrix formulas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CKAResult", "cka_matrix", "linear_cka", "random_baseline"]

ESTIMATORS = ("biased", "unbiased")


@dataclass(frozen=True)
class CKAResult:
    """CKA between every layer of ``a`` (rows) and every layer of ``b`` (columns).

    Attributes
    ----------
    biased, unbiased : arrays of shape (n_layers_a, n_layers_b)
    n : number of rows (words or tokens) the estimates are computed on.
    """

    biased: np.ndarray
    unbiased: np.ndarray
    n: int

    def __getitem__(self, estimator: str) -> np.ndarray:
        if estimator not in ESTIMATORS:
            raise KeyError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        return self.biased if estimator == "biased" else self.unbiased


@dataclass
class _Moments:
    """Sums over rows that both estimators need, for layers of ``a`` against layers of ``b``.

    Shapes: ``cross`` (La, da, Lb, db) = Σ x yᵀ, or (L, d, d) with only the blocks of each layer
    with itself (``diagonal``); ``sum_*`` (L, d) = Σ x; ``sq_*`` (L,) = Σ ‖x‖²;
    ``norms`` (La, Lb) = Σ ‖x‖²‖y‖²; ``x_ny`` (La, Lb, da) = Σ x ‖y‖²; ``nx_y`` (La, Lb, db).
    """

    cross: torch.Tensor
    sum_a: torch.Tensor
    sum_b: torch.Tensor
    sq_a: torch.Tensor
    sq_b: torch.Tensor
    norms: torch.Tensor
    x_ny: torch.Tensor
    nx_y: torch.Tensor
    diagonal: bool = False
    n: int = 0

    def block(self, i: int, j: int) -> torch.Tensor:
        """Σ x yᵀ for layer ``i`` of ``a`` and layer ``j`` of ``b``."""
        if self.diagonal:
            if i != j:
                raise IndexError("only same-layer blocks were accumulated")
            return self.cross[i]
        return self.cross[i, :, j, :]


def _chunk(features: np.ndarray | torch.Tensor, start: int, stop: int) -> torch.Tensor:
    block = features[:, start:stop]
    if isinstance(block, torch.Tensor):
        return block.to(torch.float64)
    return torch.from_numpy(np.asarray(block, dtype=np.float64))


def _column_means(features: np.ndarray | torch.Tensor, batch_size: int) -> torch.Tensor:
    n_layers, n, d = features.shape
    total = torch.zeros(n_layers, d, dtype=torch.float64)
    for start in range(0, n, batch_size):
        total += _chunk(features, start, start + batch_size).sum(1)
    return total / n


def _accumulate(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    batch_size: int,
    *,
    diagonal: bool = False,
) -> _Moments:
    """One pass over the rows; ``diagonal`` (``b`` is ``a``) keeps only each layer's own block,
    which is all that HSIC(X, X) needs and costs 1/L of the full layer x layer product."""
    (la, n, da), (lb, nb, db) = a.shape, b.shape
    if n != nb:
        raise ValueError(f"a and b must have the same rows (words), got {n} and {nb}")
    # Both estimators are invariant to adding a constant vector to every row; subtracting the
    # column means first keeps the sums small, so the large terms that cancel in the unbiased
    # formula do not eat float64 precision (BERT features have a large common offset).
    shift_a, shift_b = _column_means(a, batch_size), _column_means(b, batch_size)
    f64 = {"dtype": torch.float64}
    m = _Moments(
        cross=torch.zeros(la, da, da, **f64) if diagonal else torch.zeros(la * da, lb * db, **f64),
        sum_a=torch.zeros(la, da, **f64),
        sum_b=torch.zeros(lb, db, **f64),
        sq_a=torch.zeros(la, **f64),
        sq_b=torch.zeros(lb, **f64),
        norms=torch.zeros(la, lb, **f64),
        x_ny=torch.zeros(la, lb, da, **f64),
        nx_y=torch.zeros(la, lb, db, **f64),
        diagonal=diagonal,
    )
    for start in range(0, n, batch_size):
        x = _chunk(a, start, start + batch_size) - shift_a[:, None]  # (La, T, da)
        y = _chunk(b, start, start + batch_size) - shift_b[:, None]  # (Lb, T, db)
        t = x.shape[1]
        nx, ny = (x * x).sum(-1), (y * y).sum(-1)  # (La, T), (Lb, T)
        if diagonal:
            m.cross += x.transpose(1, 2) @ y
        else:
            m.cross += x.permute(0, 2, 1).reshape(la * da, t) @ y.permute(1, 0, 2).reshape(
                t, lb * db
            )
        m.sum_a += x.sum(1)
        m.sum_b += y.sum(1)
        m.sq_a += nx.sum(1)
        m.sq_b += ny.sum(1)
        m.norms += nx @ ny.T
        m.x_ny += torch.einsum("ltd,mt->lmd", x, ny)
        m.nx_y += torch.einsum("lt,mte->lme", nx, y)
        m.n += t
    if not diagonal:
        m.cross = m.cross.view(la, da, lb, db)
    return m


def _hsic_biased(cross: torch.Tensor, sum_x: torch.Tensor, sum_y: torch.Tensor, n: int) -> float:
    """‖X_cᵀ Y_c‖²_F = tr(K H L H); the 1/(n-1)² of HSIC_0 cancels in CKA."""
    centred = cross - torch.outer(sum_x, sum_y) / n
    return float((centred * centred).sum())


def _hsic_unbiased(
    cross: torch.Tensor,
    sum_x: torch.Tensor,
    sum_y: torch.Tensor,
    sq_x: float,
    sq_y: float,
    norms: float,
    x_ny: torch.Tensor,
    nx_y: torch.Tensor,
    n: int,
) -> float:
    """Song et al.'s HSIC_1 with K̃, L̃ = K, L with zeroed diagonals:

    [tr(K̃L̃) + 1ᵀK̃1 · 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀK̃L̃1] / (n(n-3)), where for linear
    kernels tr(K̃L̃) = ‖Xᵀ Y‖² - Σ‖x‖²‖y‖², 1ᵀK̃1 = ‖Σx‖² - Σ‖x‖², and
    1ᵀK̃L̃1 = Σ_j (x_j·Σx - ‖x_j‖²)(y_j·Σy - ‖y_j‖²), expanded into the accumulated sums.
    """
    trace = float((cross * cross).sum()) - norms
    ones_k = float(sum_x @ sum_x) - sq_x
    ones_l = float(sum_y @ sum_y) - sq_y
    ones_kl = float(sum_x @ cross @ sum_y) - float(sum_x @ x_ny) - float(nx_y @ sum_y) + norms
    value = trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 * ones_kl / (n - 2)
    return value / (n * (n - 3))


def cka_matrix(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor | None = None,
    *,
    batch_size: int = 4096,
) -> CKAResult:
    """Linear CKA, biased and unbiased, between every layer of ``a`` and every layer of ``b``.

    Parameters
    ----------
    a : array of shape (n_layers_a, n, d_a), e.g. the memory-mapped word features of a model
        (any float dtype; computed in float64).
    b : array of shape (n_layers_b, n, d_b) with the same ``n`` rows (the same words, in the same
        order), or None for ``a`` against itself (the layer x layer map).
    batch_size : rows per minibatch; memory is O((L d)²), not O(n²).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(1, 200, 8))
    >>> r = cka_matrix(x, 3.0 * x)
    >>> round(float(r.biased[0, 0]), 6), round(float(r.unbiased[0, 0]), 6)
    (1.0, 1.0)
    """
    if a.ndim != 3 or (b is not None and b.ndim != 3):
        raise ValueError("features must have shape (n_layers, n, d)")
    n = a.shape[1]
    if n < 4:
        raise ValueError(f"the unbiased estimator needs at least 4 rows, got {n}")
    same = b is None
    b = a if b is None else b
    cross = _accumulate(a, b, batch_size)
    self_a = cross if same else _accumulate(a, a, batch_size, diagonal=True)
    self_b = cross if same else _accumulate(b, b, batch_size, diagonal=True)
    la, lb = a.shape[0], b.shape[0]

    def hsic(m: _Moments, i: int, j: int) -> tuple[float, float]:
        block = m.block(i, j)
        biased = _hsic_biased(block, m.sum_a[i], m.sum_b[j], m.n)
        unbiased = _hsic_unbiased(
            block,
            m.sum_a[i],
            m.sum_b[j],
            float(m.sq_a[i]),
            float(m.sq_b[j]),
            float(m.norms[i, j]),
            m.x_ny[i, j],
            m.nx_y[i, j],
            m.n,
        )
        return biased, unbiased

    norm_a = np.array([hsic(self_a, i, i) for i in range(la)])  # (La, 2)
    norm_b = np.array([hsic(self_b, j, j) for j in range(lb)])  # (Lb, 2)
    values = np.array([[hsic(cross, i, j) for j in range(lb)] for i in range(la)])  # (La, Lb, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A constant layer has HSIC(X, X) = 0 and no defined CKA: NaN, never a made-up number.
        scores = values / np.sqrt(norm_a[:, None, :] * norm_b[None, :, :])
    return CKAResult(biased=scores[..., 0], unbiased=scores[..., 1], n=n)


def linear_cka(x: np.ndarray, y: np.ndarray, *, unbiased: bool = False) -> float:
    """Linear CKA between two matrices of shape (n, d_x) and (n, d_y)."""
    result = cka_matrix(np.asarray(x)[None], np.asarray(y)[None])
    return float(result["unbiased" if unbiased else "biased"][0, 0])


def random_baseline(
    n: int, d_a: int, d_b: int, *, seed: int = 0, draws: int = 3, batch_size: int = 4096
) -> dict[str, np.ndarray]:
    """CKA of two independent standard-normal matrices of shapes (n, d_a) and (n, d_b).

    The sanity baseline printed beside every result: the unbiased estimator scatters around 0,
    the biased one near sqrt(d_a d_b / ((n + d_a)(n + d_b))) (its small-sample inflation). Returns
    ``{"biased": (draws,), "unbiased": (draws,)}``.
    """
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"biased": [], "unbiased": []}
    for _ in range(draws):
        x = torch.randn(1, n, d_a, generator=generator, dtype=torch.float64)
        y = torch.randn(1, n, d_b, generator=generator, dtype=torch.float64)
        result = cka_matrix(x, y, batch_size=batch_size)
        out["biased"].append(float(result.biased[0, 0]))
        out["unbiased"].append(float(result.unbiased[0, 0]))
    return {key: np.array(values) for key, values in out.items()}
