"""Layer-wise logistic-regression probes, control tasks and baselines (all tiny, CPU, seeded)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probe.probes.baselines import MajorityClassBaseline, majority_accuracy
from probe.probes.control import ControlTask, stable_uniform
from probe.probes.linear import LayerStats, LayerwiseLogisticRegression

K = 4  # classes in the synthetic problems


def _signal_and_noise(n: int, d: int = 12, seed: int = 0):
    """Layer 0: pure noise. Layer 1: class means 4 sd apart in a few directions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    means = rng.normal(size=(K, d)) * 2.0
    noise = rng.normal(size=(n, d))
    signal = means[y] + rng.normal(size=(n, d))
    return np.stack([noise, signal]).astype(np.float32), y


def _split(X, y, n_train):
    return X[:, :n_train], y[:n_train], X[:, n_train:], y[n_train:]


# ---------------------------------------------------------------------------------------------
# Linear probe
# ---------------------------------------------------------------------------------------------


def test_probe_learns_the_layer_that_carries_the_signal_and_not_the_noise_layer():
    X, y = _signal_and_noise(1600)
    Xtr, ytr, Xte, yte = _split(X, y, 1000)
    Xdv, ydv, Xte, yte = Xte[:, :300], yte[:300], Xte[:, 300:], yte[300:]
    probe = LayerwiseLogisticRegression(device="cpu").fit(Xtr, ytr, Xdv, ydv)
    acc = probe.score(Xte, yte)
    assert acc.shape == (2,)
    assert acc[1] > 0.95
    assert acc[0] < 1 / K + 0.08  # chance is 0.25
    assert probe.coef_.shape == (2, K, 12)
    assert probe.intercept_.shape == (2, K)
    assert probe.predict(Xte).shape == (2, 300)
    proba = probe.predict_proba(Xte)
    assert proba.shape == (2, 300, K)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probe.predict(Xte), proba.argmax(-1))


def test_dev_scores_match_sklearn_per_c_and_the_first_best_c_is_chosen():
    # Layer 0: 40 training points in 200 dimensions with signal in 3 of them: a weak penalty
    # fits the noise. Layer 1: the same with a strong signal.
    rng = np.random.default_rng(1)
    n_tr, n_dev, d = 40, 400, 200
    y = rng.integers(0, 2, n_tr + n_dev)
    hard = rng.normal(size=(n_tr + n_dev, d))
    hard[:, :3] += (2 * y[:, None] - 1) * 0.7
    easy = rng.normal(size=(n_tr + n_dev, d))
    easy[:, :3] += (2 * y[:, None] - 1) * 3.0
    X = np.stack([hard, easy]).astype(np.float32)
    # Any order; fitted ascending. Up to C=10: beyond, this separable problem's optimum is only
    # resolved to ~1e-4 of the objective in float32, enough to flip a few dev points.
    Cs = np.logspace(1, -4, 6)
    probe = LayerwiseLogisticRegression(Cs=Cs, tol=1e-6, device="cpu")
    probe.fit(X[:, :n_tr], y[:n_tr], X[:, n_tr:], y[n_tr:])
    assert probe.dev_scores_.shape == (2, 6)
    np.testing.assert_array_equal(probe.Cs_, np.sort(Cs))
    for layer in range(2):
        scores = probe.dev_scores_[layer]
        assert probe.C_[layer] == probe.Cs_[np.flatnonzero(scores == scores.max())[0]]
        for C, score in zip(probe.Cs_, scores, strict=True):
            ref = LogisticRegression(C=C, tol=1e-8, max_iter=5000).fit(X[layer, :n_tr], y[:n_tr])
            # Binary problem: sklearn's single-vector loss; at most 2 of 400 dev points differ
            # (float32 versus float64 on a separable problem at weak penalties).
            assert score == pytest.approx(ref.score(X[layer, n_tr:], y[n_tr:]), abs=0.0051)
    assert probe.C_[0] < Cs.max()  # the overfitting layer is penalised
    assert probe.dev_scores_[1].max() > 0.95


@pytest.mark.parametrize("standardize", [False, True])
def test_objective_matches_sklearn_logistic_regression_for_a_fixed_c(standardize):
    rng = np.random.default_rng(2)
    n, d, C = 600, 10, 0.05
    y = rng.integers(0, K, n)
    # Unequal scales and offsets, so standardisation and the unpenalised intercept matter.
    X = rng.normal(size=(n, d)) * rng.uniform(0.2, 5, d) + rng.normal(size=d) * 3
    X[:, :4] += np.eye(K)[y] * 1.5
    X = X.astype(np.float32)
    ours = LayerwiseLogisticRegression(Cs=C, standardize=standardize, tol=1e-6, device="cpu")
    ours.fit(X[None], y)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000)
    ref = make_pipeline(StandardScaler(), ref) if standardize else ref
    ref.fit(X.astype(np.float64), y)
    lr = ref[-1] if standardize else ref
    # float32 with tol=1e-6 pins poorly-determined coefficients (low-variance features) to ~1%;
    # a wrong penalty scale or a penalised intercept would be off by far more.
    np.testing.assert_allclose(ours.coef_[0], lr.coef_, atol=1e-2 * np.abs(lr.coef_).max())
    np.testing.assert_allclose(ours.intercept_[0], lr.intercept_, atol=1e-2)
    agree = (ours.predict(X[None])[0] == ref.predict(X)).mean()
    assert agree > 0.99
    proba = ours.predict_proba(X[None])[0].astype(np.float64)
    ours_loss = log_loss(y, proba / proba.sum(1, keepdims=True))  # float32 sums are 1 +- 1e-7
    assert ours_loss == pytest.approx(log_loss(y, ref.predict_proba(X)), abs=1e-4)
    assert ours.C_.tolist() == [C]


def test_float16_memmap_input_gives_the_same_probe_as_float32(tmp_path):
    X, y = _signal_and_noise(700, seed=3)
    X16 = X.astype(np.float16)
    np.save(tmp_path / "X.npy", X16)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    kw = dict(Cs=(0.1, 1.0), device="cpu", chunk_size=128)  # several chunks per pass
    a = LayerwiseLogisticRegression(**kw).fit(mm[:, :500], y[:500], mm[:, 500:], y[500:])
    b = LayerwiseLogisticRegression(**kw).fit(
        X16[:, :500].astype(np.float32), y[:500], X16[:, 500:].astype(np.float32), y[500:]
    )
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.predict(mm[:, 500:]), b.predict(X16[:, 500:]))


def test_layers_are_fitted_independently():
    X, y = _signal_and_noise(600, seed=4)
    Xtr, ytr, Xdv, ydv = _split(X, y, 400)
    both = LayerwiseLogisticRegression(device="cpu").fit(Xtr, ytr, Xdv, ydv)
    alone = LayerwiseLogisticRegression(device="cpu").fit(Xtr[1:], ytr, Xdv[1:], ydv)
    np.testing.assert_allclose(both.coef_[1], alone.coef_[0], rtol=1e-6)
    np.testing.assert_array_equal(both.dev_scores_[1], alone.dev_scores_[0])


def test_progress_counts_every_layer_and_c_once():
    X, y = _signal_and_noise(300, seed=6)
    calls = []
    LayerwiseLogisticRegression(Cs=(0.1, 1.0, 10.0), device="cpu").fit(
        *_split(X, y, 200), progress=calls.append
    )
    assert calls == [1] * (2 * 3)


def test_layers_fitted_in_parallel_threads_match_a_sequential_fit():
    # 6000 x 400 training values per layer is above the size where layers go to worker threads.
    rng = np.random.default_rng(9)
    y = rng.integers(0, K, 7000)
    X = rng.normal(size=(3, 7000, 400)).astype(np.float32)
    X[:, :, :K] += 2 * np.eye(K, dtype=np.float32)[y]
    kw = dict(Cs=(0.01, 1.0), device="cpu")
    seq = LayerwiseLogisticRegression(n_jobs=1, **kw).fit(
        X[:, :6000], y[:6000], X[:, 6000:], y[6000:]
    )
    par = LayerwiseLogisticRegression(n_jobs=2, **kw).fit(
        X[:, :6000], y[:6000], X[:, 6000:], y[6000:]
    )
    np.testing.assert_array_equal(par.coef_, seq.coef_)
    np.testing.assert_array_equal(par.dev_scores_, seq.dev_scores_)
    assert par.dev_scores_.min() > 0.7  # learned something (chance is 0.25)


def test_an_interrupt_stops_the_parallel_layer_fits_without_finishing_the_queue():
    # The interrupt arrives from the first finished C (as Ctrl-C or SIGTERM would reach the main
    # thread mid-fit); the other worker must stop and the queued layers must never start.
    rng = np.random.default_rng(9)
    y = rng.integers(0, K, 7000)
    X = rng.normal(size=(8, 7000, 400)).astype(np.float32)  # 6000 x 400 train: worker threads
    calls = []

    def interrupt(n: int) -> None:
        calls.append(n)
        raise KeyboardInterrupt

    probe = LayerwiseLogisticRegression(Cs=(0.01, 0.1, 1.0), device="cpu", n_jobs=2)
    with pytest.raises(KeyboardInterrupt):
        probe.fit(X[:, :6000], y[:6000], X[:, 6000:], y[6000:], progress=interrupt)
    assert len(calls) <= 2  # without cancelling: all 8 layers x 3 Cs would still be fitted


def test_class_absent_from_training_is_never_predicted():
    X, y = _signal_and_noise(500, seed=5)
    keep = y != 2
    probe = LayerwiseLogisticRegression(Cs=1.0, n_classes=5, device="cpu")
    probe.fit(X[:, keep], y[keep])
    assert probe.coef_.shape == (2, 5, 12)
    np.testing.assert_array_equal(probe.classes_, np.arange(5))
    assert np.all(probe.coef_[:, [2, 4]] == 0)
    assert np.all(np.isneginf(probe.intercept_[:, [2, 4]]))
    pred = probe.predict(X)
    assert not np.isin(pred, [2, 4]).any()
    assert probe.predict_proba(X)[:, :, [2, 4]].max() == 0


def test_without_dev_data_only_the_middle_of_the_grid_is_fitted():
    X, y = _signal_and_noise(300, seed=6)
    with pytest.warns(UserWarning, match="no dev split"):
        probe = LayerwiseLogisticRegression(Cs=(0.01, 0.1, 1.0), device="cpu").fit(X, y)
    np.testing.assert_array_equal(probe.C_, [0.1, 0.1])
    assert np.isnan(probe.dev_scores_).all()
    assert (probe.n_iter_[:, [0, 2]] == -1).all() and (probe.n_iter_[:, 1] >= 0).all()


def test_unfitted_probe_raises_not_fitted_error():
    probe = LayerwiseLogisticRegression()
    X = np.zeros((1, 3, 2), dtype=np.float32)
    for method in (probe.predict, probe.predict_proba, probe.decision_function):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(NotFittedError):
        probe.score(X, np.zeros(3, dtype=int))


def test_bad_shapes_and_labels_are_rejected_with_the_actual_values():
    X, y = _signal_and_noise(100)
    with pytest.raises(ValueError, match=r"got shape \(100, 12\)"):
        LayerwiseLogisticRegression().fit(X[0], y)
    with pytest.raises(ValueError, match="at least two classes"):
        LayerwiseLogisticRegression(Cs=1.0, device="cpu").fit(X, np.zeros(100, dtype=int))
    with pytest.raises(ValueError, match="Cs must be positive"):
        LayerwiseLogisticRegression(Cs=(0.0, 1.0), device="cpu").fit(X, y, X, y)


def test_constructor_only_stores_its_arguments():
    probe = LayerwiseLogisticRegression(Cs=(1.0, 2.0), standardize=True, max_iter=7)
    assert probe.get_params()["Cs"] == (1.0, 2.0)
    assert probe.get_params()["max_iter"] == 7
    assert not [a for a in vars(probe) if a.endswith("_")]


# ---------------------------------------------------------------------------------------------
# Control tasks
# ---------------------------------------------------------------------------------------------


def _corpus(n_types: int, per_type: int, seed: int = 0):
    """Tokens as type ids (each type ``per_type`` times, shuffled) and skewed real labels."""
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(n_types), per_type)
    rng.shuffle(types)
    labels = rng.choice(K, size=types.size, p=[0.5, 0.3, 0.15, 0.05])
    return [f"w{t}" for t in types], labels


def test_control_task_gives_a_type_the_same_label_everywhere():
    words, labels = _corpus(50, 10)
    task = ControlTask(seed=3).fit(words, labels)
    control = task.transform(words)
    for word in set(words):
        assert len(set(control[np.array(words) == word])) == 1
    # A fresh object with the same seed, and types first seen now, agree too.
    again = ControlTask(seed=3).fit(words[::-1], labels[::-1])
    np.testing.assert_array_equal(again.transform(words), control)
    np.testing.assert_array_equal(task.transform(["new", "new2"]), again.transform(["new", "new2"]))
    assert task.type_labels_["w7"] == control[words.index("w7")]
    # Another seed is another control task.
    assert (ControlTask(seed=4).fit(words, labels).transform(words) != control).any()


def test_control_labels_follow_the_training_label_distribution():
    words, labels = _corpus(4000, 2)
    task = ControlTask(seed=0).fit(words, labels)
    np.testing.assert_allclose(task.class_prior_, np.bincount(labels) / labels.size)
    per_type = np.array(list(task.type_labels_.values()))
    freq = np.bincount(per_type, minlength=K) / per_type.size
    np.testing.assert_allclose(freq, task.class_prior_, atol=0.03)
    unseen = task.transform([f"unseen{i}" for i in range(4000)])
    np.testing.assert_allclose(
        np.bincount(unseen, minlength=K) / 4000, task.class_prior_, atol=0.03
    )


def test_control_labels_do_not_depend_on_python_hash_randomisation():
    types = ["the", ("New", "York"), ("w1", 3)]
    code = (
        "from probe.probes.control import stable_uniform;"
        f"print([stable_uniform(7, t) for t in {types!r}])"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([stable_uniform(7, t) for t in types])
    assert stable_uniform(7, np.str_("the")) == stable_uniform(7, "the")


def test_control_task_is_learnable_only_from_features_that_identify_types():
    """Selectivity: control labels are memorisable from type identity, not from anything else."""
    n_types, per_type, d = 60, 30, 32
    words, labels = _corpus(n_types, per_type, seed=7)
    control = ControlTask(seed=0).fit_transform(words, labels)
    rng = np.random.default_rng(8)
    type_vec = rng.normal(size=(n_types, d))
    ids = np.array([int(w[1:]) for w in words])
    identifies = type_vec[ids] + 0.3 * rng.normal(size=(ids.size, d))
    shuffled = type_vec[rng.permutation(ids)] + 0.3 * rng.normal(size=(ids.size, d))
    X = np.stack([identifies, shuffled]).astype(np.float32)
    n_tr, n_dev = 1000, 400
    probe = LayerwiseLogisticRegression(device="cpu").fit(
        X[:, :n_tr], control[:n_tr], X[:, n_tr : n_tr + n_dev], control[n_tr : n_tr + n_dev]
    )
    acc = probe.score(X[:, n_tr + n_dev :], control[n_tr + n_dev :])
    majority = majority_accuracy(control[:n_tr], control[n_tr + n_dev :])
    assert acc[0] > 0.9
    assert acc[1] < majority + 0.08


def test_control_task_rejects_mismatched_lengths_and_needs_fit():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ControlTask().fit(["a", "b"], [0, 1, 2])
    with pytest.raises(NotFittedError):
        ControlTask().transform(["a"])


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


def test_majority_baseline_predicts_the_most_frequent_training_label():
    y = np.array([3, 1, 3, 0, 3, 1])
    base = MajorityClassBaseline().fit(None, y)
    assert base.predict(np.zeros((4, 2))).tolist() == [3, 3, 3, 3]
    assert base.score(None, np.array([3, 1])) == 0.5
    assert majority_accuracy(y, [0, 0, 3]) == pytest.approx(1 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from sklearn.base import clone

        assert clone(base).get_params() == {}
    with pytest.raises(NotFittedError):
        MajorityClassBaseline().predict(np.zeros((1, 1)))


def test_fits_sharing_layer_stats_equal_lone_fits_exactly():
    # A control task refits the task's features with other labels: the per-layer statistics and
    # preconditioner are computed once and shared, which must change no bit of the result.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 300, 6)).astype(np.float32)
    y = (X[1, :, 0] > 0).astype(int) + (X[1, :, 1] > 0)
    X_dev, y_dev = X[:, :100], y[:100]
    stats = LayerStats(X)
    for labels in (y, rng.integers(0, 3, 300)):
        lone = LayerwiseLogisticRegression(device="cpu").fit(X, labels, X_dev, y_dev)
        shared = LayerwiseLogisticRegression(device="cpu").fit(X, labels, X_dev, y_dev, stats=stats)
        np.testing.assert_array_equal(shared.coef_, lone.coef_)
        np.testing.assert_array_equal(shared.intercept_, lone.intercept_)
        np.testing.assert_array_equal(shared.C_, lone.C_)
    with pytest.raises(ValueError, match="another training array"):
        LayerwiseLogisticRegression(device="cpu").fit(X.copy(), y, stats=stats)
