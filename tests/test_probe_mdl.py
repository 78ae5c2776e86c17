"""Online code length (MDL probes): the code is short exactly when the labels are learnable."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from probe.probes.linear import fit_layerwise_logistic
from probe.probes.mdl import VOITA_TIMESTAMPS, online_codelength, timestamp_boundaries

K = 5


def _clusters(n: int, seed: int, d: int = 12, spread: float = 4.0):
    """Items of ``K`` well-separated Gaussian clusters, three per sentence."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).normal(size=(K, d)) * spread
    y = rng.integers(0, K, n)
    X = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X[None], y, np.repeat(np.arange(n // 3 + 1), 3)[:n]


def test_separable_labels_cost_far_less_than_the_uniform_code_and_shuffled_labels_do_not():
    X, y, groups = _clusters(3000, seed=0)
    X_dev, y_dev, _ = _clusters(600, seed=1)
    code = online_codelength(X, y, groups, X_dev, y_dev, n_classes=K, device="cpu")
    assert code.uniform_codelength == pytest.approx(3000 * math.log2(K))
    assert code.compression[0] > 20  # under 0.12 bits per label instead of 2.32

    shuffled = np.random.default_rng(2).permutation(y)
    dev_shuffled = np.random.default_rng(3).permutation(y_dev)
    noise = online_codelength(X, shuffled, groups, X_dev, dev_shuffled, n_classes=K, device="cpu")
    # Labels independent of X: the best code is the label marginal, i.e. about uniform.
    assert 0.9 < noise.compression[0] < 1.02


def test_codelength_is_the_uniform_first_block_plus_each_block_under_the_previous_probe():
    """Recompute every block with scikit-learn at the C the online code chose."""
    X, y, groups = _clusters(900, seed=4, spread=1.0)
    X_dev, y_dev, _ = _clusters(300, seed=5, spread=1.0)
    fractions = (0.05, 0.2, 0.5, 1.0)
    code = online_codelength(
        X, y, groups, X_dev, y_dev, n_classes=K, fractions=fractions, Cs=[0.1], device="cpu"
    )
    order = np.argsort(np.random.default_rng(0).permutation(300)[groups], kind="stable")
    Xo, yo = X[0, order], y[order]
    assert code.block_ends.tolist() == [45, 180, 450, 900]  # 3 items per sentence
    expected = code.block_ends[0] * math.log2(K)
    for start, stop in zip(code.block_ends[:-1], code.block_ends[1:], strict=True):
        if len(np.unique(yo[:start])) < K:
            pytest.skip("a prefix misses a class; scikit-learn would drop it")
        reference = LogisticRegression(C=0.1, tol=1e-8, max_iter=5000).fit(Xo[:start], yo[:start])
        # Our probe also penalises the (centred) intercept; with every class present and a
        # moderate C this changes the code length by well under a bit per hundred items.
        logp = reference.predict_log_proba(Xo[start:stop])
        expected += -logp[np.arange(stop - start), yo[start:stop]].sum() / math.log(2)
    assert code.codelength[0] == pytest.approx(expected, rel=0.02)


def test_all_classes_gives_a_class_absent_from_training_a_finite_probability():
    X, y, _ = _clusters(300, seed=8)
    keep = y != 4
    fit = fit_layerwise_logistic(
        X[:, keep], y[keep], X, y, n_classes=K, all_classes=True, select="log_loss", device="cpu"
    )
    assert np.isfinite(fit.intercept).all() and np.isfinite(fit.dev_log_loss).all()
    default = fit_layerwise_logistic(X[:, keep], y[keep], X, y, n_classes=K, device="cpu")
    assert default.intercept[0, 4] == -np.inf  # the default keeps the maximum-likelihood -inf


def test_log_loss_selection_picks_the_lowest_dev_log_loss():
    X, y, _ = _clusters(400, seed=9, spread=0.5)
    X_dev, y_dev, _ = _clusters(400, seed=10, spread=0.5)
    fit = fit_layerwise_logistic(X, y, X_dev, y_dev, select="log_loss", device="cpu")
    assert fit.C[0] == fit.Cs[np.nanargmin(fit.dev_log_loss[0])]


def test_timestamps_cut_sentences_like_the_reference_int_of_fraction_times_n():
    n = 4000
    assert timestamp_boundaries(n).tolist() == [int(f * n) for f in VOITA_TIMESTAMPS]
    with pytest.raises(ValueError, match="at least 1000 training sentences"):
        timestamp_boundaries(999)
    with pytest.raises(ValueError, match="end at 1"):
        timestamp_boundaries(n, (0.1, 0.5))


def test_the_validated_minimum_of_training_sentences_is_what_the_first_block_needs():
    from probe.probes.checks import MDL_MIN_SENTENCES

    assert round(1 / VOITA_TIMESTAMPS[0]) == MDL_MIN_SENTENCES
    timestamp_boundaries(MDL_MIN_SENTENCES)  # does not raise
