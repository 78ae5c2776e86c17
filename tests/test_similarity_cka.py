"""Linear CKA: the streamed feature-space estimators against the direct n x n Gram formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.similarity.cka import cka_matrix, linear_cka, random_baseline


def _gram_hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Kornblith et al. 2019, eq. 3: tr(K H L H) / (n-1)^2."""
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def _gram_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. 2012, eq. 5, written out literally on n x n Gram matrices."""
    n = len(k)
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    value = (
        np.trace(k @ l)
        + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ k @ l @ one)
    )
    return float(value) / (n * (n - 3))


def _gram_cka(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def related() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7)) + 5.0  # a large common offset, as in BERT features
    y = np.tanh(x @ rng.normal(size=(7, 5))) + 0.5 * rng.normal(size=(60, 5))
    return x, y


def test_streamed_estimators_equal_the_direct_gram_formulas(related):
    x, y = related
    for batch_size in (7, 60, 1000):  # minibatches that do and do not divide n
        result = cka_matrix(x[None], y[None], batch_size=batch_size)
        assert result.biased[0, 0] == pytest.approx(_gram_cka(x, y, _gram_hsic_biased), abs=1e-10)
        assert result.unbiased[0, 0] == pytest.approx(
            _gram_cka(x, y, _gram_hsic_unbiased), abs=1e-10
        )


def test_layer_by_layer_matrix_equals_pairwise_cka(related):
    x, y = related
    rng = np.random.default_rng(1)
    z = rng.normal(size=(60, 7))
    stacked_a = np.stack([x, z])
    stacked_b = np.stack([np.pad(y, ((0, 0), (0, 2))), x, z])  # width 7 for all layers of b
    result = cka_matrix(stacked_a, stacked_b, batch_size=16)
    for i, left in enumerate(stacked_a):
        for j, right in enumerate(stacked_b):
            assert result.biased[i, j] == pytest.approx(linear_cka(left, right), abs=1e-10)
            assert result.unbiased[i, j] == pytest.approx(
                linear_cka(left, right, unbiased=True), abs=1e-10
            )
    within = cka_matrix(stacked_a, batch_size=16)
    assert np.allclose(within.biased, within.biased.T)
    assert np.allclose(np.diag(within.unbiased), 1.0)


def test_cka_is_one_for_identical_inputs(related):
    x, _ = related
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, unbiased=True) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(related):
    x, y = related
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(7, 7)))
    for unbiased in (False, True):
        reference = linear_cka(x, y, unbiased=unbiased)
        assert linear_cka(x @ q, y, unbiased=unbiased) == pytest.approx(reference, abs=1e-10)
        assert linear_cka(3.7 * x, 0.01 * y, unbiased=unbiased) == pytest.approx(
            reference, abs=1e-10
        )
        assert linear_cka(x + 100.0, y, unbiased=unbiased) == pytest.approx(reference, abs=1e-9)


def test_cka_is_not_invariant_to_anisotropic_scaling(related):
    # The property that separates CKA from CCA: it must be able to fail here.
    x, y = related
    stretched = x * np.array([10.0, 1, 1, 1, 1, 1, 0.1])
    assert abs(linear_cka(stretched, y) - linear_cka(x, y)) > 0.01


def test_unbiased_cka_is_near_zero_for_independent_inputs_and_biased_is_inflated():
    n, d = 200, 50
    draws = random_baseline(n, d, d, seed=0, draws=20)
    assert abs(draws["unbiased"].mean()) < 0.01
    assert draws["unbiased"].min() < 0 < draws["unbiased"].max()  # not clamped at zero
    # biased CKA of independent Gaussians: about sqrt(d_a d_b / ((n + d_a)(n + d_b))) = 0.2
    assert draws["biased"].mean() == pytest.approx(d / (n + d), rel=0.05)


def test_features_on_disk_and_in_float16_are_read_in_minibatches(tmp_path, related):
    x, y = related
    path = tmp_path / "features.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(2, 60, 7))
    array[0], array[1] = x, np.pad(y, ((0, 0), (0, 2)))
    array.flush()
    mapped = np.load(path, mmap_mode="r")
    streamed = cka_matrix(mapped, batch_size=8)
    direct = cka_matrix(torch.from_numpy(np.asarray(mapped, dtype=np.float64)), batch_size=1000)
    assert np.allclose(streamed.biased, direct.biased, atol=1e-12)
    assert np.allclose(streamed.unbiased, direct.unbiased, atol=1e-12)


def test_mismatched_rows_and_too_few_rows_are_errors(related):
    x, y = related
    with pytest.raises(ValueError, match="same rows"):
        cka_matrix(x[None], y[None, :50])
    with pytest.raises(ValueError, match="at least 4"):
        cka_matrix(x[None, :3])
