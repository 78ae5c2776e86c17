"""Scores for probes and their bootstrap confidence intervals.

Every metric accepts ``y_pred`` of shape ``(n,)`` or ``(n_layers, n)`` (one row per layer, the
shape :class:`~probe.probes.linear.LayerwiseLogisticRegression` predicts) and returns a float or an
array of shape ``(n_layers,)``. All three named metrics are functions of a confusion matrix, which
is what makes :func:`bootstrap_ci` fast: a bootstrap resample only re-weights the examples, so its
confusion matrix is one weighted ``np.bincount`` away and no metric is re-run in Python per
resample.

Scores are fractions in ``[0, 1]``; the official SemEval scorer prints percentages (x 100).

Examples
--------
>>> y_true = np.array([0, 0, 1, 1])
>>> accuracy(y_true, np.array([0, 1, 1, 1]))
0.75
>>> accuracy(y_true, np.array([[0, 1, 1, 1], [0, 0, 1, 1]]))
array([0.75, 1.  ])
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

# Metric names a study may ask for; the study schema validates against this tuple.
METRICS = ("accuracy", "macro_f1", "semeval2010_official_f1")

_SEMEVAL_OTHER = "Other"
# "Cause-Effect(e1,e2)": relation name, then the direction the scorer strips for (9+1)-way scoring.
_SEMEVAL_LABEL = re.compile(r"^(?P<relation>[A-Za-z][A-Za-z-]*)\((?:e1,e2|e2,e1)\)$")

# Upper bound on (resamples x examples) held at once by the bootstrap: 2**22 float64 = 32 MiB.
_BOOTSTRAP_CELLS = 2**22


# --------------------------------------------------------------------------------------------
# private helpers: label encoding and confusion matrices
# --------------------------------------------------------------------------------------------


def _as_layers(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return ``(y_true (n,), y_pred (n_layers, n), was_1d)`` after checking shapes."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D of shape (n,), got shape {y_true.shape}")
    was_1d = y_pred.ndim == 1
    if was_1d:
        y_pred = y_pred[None, :]
    if y_pred.ndim != 2 or y_pred.shape[1] != y_true.shape[0]:
        raise ValueError(
            f"y_pred must have shape (n,) or (n_layers, n) with n = {y_true.shape[0]}, "
            f"got shape {y_pred.shape}"
        )
    if y_true.shape[0] == 0:
        raise ValueError("cannot score zero examples")
    return y_true, y_pred, was_1d


def _encode(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map labels of any dtype to codes ``0..K-1`` over the union of true and predicted labels."""
    labels, codes = np.unique(np.concatenate([y_true, y_pred.ravel()]), return_inverse=True)
    n = y_true.shape[0]
    return labels, codes[:n], codes[n:].reshape(y_pred.shape)


def _confusion(true_codes: np.ndarray, pred_codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion counts of shape (n_layers, K, K), rows = true label, columns = predicted."""
    n_layers = pred_codes.shape[0]
    keys = (np.arange(n_layers)[:, None] * n_labels + true_codes[None, :]) * n_labels + pred_codes
    counts = np.bincount(keys.ravel(), minlength=n_layers * n_labels * n_labels)
    return counts.reshape(n_layers, n_labels, n_labels).astype(np.float64)


def _accuracy_from_confusion(C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.trace(C, axis1=-2, axis2=-1) / C.sum(axis=(-2, -1))


def _macro_f1_from_confusion(C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # Same convention as sklearn.metrics.f1_score(average="macro"): average over the labels seen
    # in y_true or y_pred of *this* sample, and F1 = 0 for a label never predicted correctly.
    tp = np.diagonal(C, axis1=-2, axis2=-1)
    gold = C.sum(axis=-1)
    pred = C.sum(axis=-2)
    present = (gold + pred) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / (gold + pred), 0.0)
    return f1.sum(axis=-1) / present.sum(axis=-1)


def _semeval_relations(labels: np.ndarray) -> np.ndarray:
    """Relation name of each label ("" for Other); raise on labels the scorer would reject."""
    relations = []
    for label in labels:
        if not isinstance(label, str):
            raise ValueError(
                "semeval2010_official_f1 needs label strings such as 'Cause-Effect(e1,e2)' or "
                f"'Other', got {label!r} of type {type(label).__name__}; map class indices to "
                "names first, e.g. np.asarray(label_names)[y]"
            )
        if label == _SEMEVAL_OTHER:
            relations.append("")
            continue
        match = _SEMEVAL_LABEL.match(label)
        if match is None:
            raise ValueError(
                f"not a SemEval-2010 Task 8 label: {label!r}; expected 'Other' or "
                "'Relation(e1,e2)' / 'Relation(e2,e1)'"
            )
        relations.append(match["relation"])
    return np.asarray(relations, dtype=object)


def _semeval_from_confusion(C: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # The official scorer's (9+1)-way evaluation with directionality (see the public function's
    # docstring for the formula), written over the 19-way confusion matrix so it vectorises.
    relations = _semeval_relations(labels)
    f1_sum = np.zeros(C.shape[:-2])
    n_relations = np.zeros(C.shape[:-2])
    for relation in sorted(set(relations) - {""}):
        idx = np.flatnonzero(relations == relation)
        correct = np.diagonal(C, axis1=-2, axis2=-1)[..., idx].sum(axis=-1)
        predicted = C[..., :, idx].sum(axis=(-2, -1))  # every prediction of R, either direction
        gold = C[..., idx, :].sum(axis=(-2, -1))  # every gold R, either direction
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, correct / predicted, 0.0)
            recall = np.where(gold > 0, correct / gold, 0.0)
            f1 = np.where(
                precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0
            )
        # The scorer averages over relations present in the answer key only.
        f1_sum += np.where(gold > 0, f1, 0.0)
        n_relations += gold > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relations > 0, f1_sum / n_relations, np.nan)


_FROM_CONFUSION: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy_from_confusion,
    "macro_f1": _macro_f1_from_confusion,
    "semeval2010_official_f1": _semeval_from_confusion,
}


def _score(y_true, y_pred, name: str) -> float | np.ndarray:
    y_true, y_pred, was_1d = _as_layers(y_true, y_pred)
    labels, true_codes, pred_codes = _encode(y_true, y_pred)
    values = _FROM_CONFUSION[name](_confusion(true_codes, pred_codes, len(labels)), labels)
    return float(values[0]) if was_1d else values


# --------------------------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------------------------


def accuracy(y_true, y_pred) -> float | np.ndarray:
    """Fraction of examples whose predicted label equals the true label.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    y_pred : array-like of shape (n,) or (n_layers, n)

    Returns
    -------
    float, or ndarray of shape (n_layers,) when ``y_pred`` is 2-D.
    """
    return _score(y_true, y_pred, "accuracy")


def macro_f1(y_true, y_pred) -> float | np.ndarray:
    """Unweighted mean of per-label F1 over the labels present in ``y_true`` or ``y_pred``.

    Identical to ``sklearn.metrics.f1_score(y_true, y_pred, average="macro")`` (a label that is
    predicted but never correct, or gold but never predicted, contributes F1 = 0).

    Parameters
    ----------
    y_true : array-like of shape (n,)
    y_pred : array-like of shape (n,) or (n_layers, n)

    Returns
    -------
    float, or ndarray of shape (n_layers,) when ``y_pred`` is 2-D.
    """
    return _score(y_true, y_pred, "macro_f1")


def semeval2010_official_f1(y_true_labels, y_pred_labels) -> float | np.ndarray:
    """Official score of SemEval-2010 Task 8: macro F1 of the (9+1)-way, directed evaluation.

    Re-implements what ``semeval2010_task8_scorer-v1.2.pl`` (Nakov, 2010; shipped with the task
    data) reports as "(9+1)-way evaluation with directionality taken into account: macro-averaged
    F1". For each relation type R other than ``Other`` (its two directions pooled):

    - ``correct_R`` = examples whose predicted label equals the gold label exactly, gold type R
      (relation *and* direction right),
    - ``predicted_R`` = examples predicted as R in either direction (a right relation with the
      wrong direction counts here but not in ``correct_R``, as the scorer's ``xDIRx`` column),
    - ``gold_R`` = examples whose gold type is R, either direction,
    - ``P_R = correct_R / predicted_R`` (0 if nothing was predicted as R),
      ``R_R = correct_R / gold_R``, ``F1_R = 2 P_R R_R / (P_R + R_R)`` (0 if both are 0).

    The score is the mean of ``F1_R`` over the relation types present in the gold labels (all 9
    on the official test set). ``Other`` is never averaged, but predicting ``Other`` for a relation
    costs recall and predicting a relation for an ``Other`` example costs precision. The scorer
    prints percentages; this returns a fraction (multiply by 100 to compare).

    Parameters
    ----------
    y_true_labels : array-like of str, shape (n,)
        Gold labels: ``"Other"`` or ``"Relation(e1,e2)"`` / ``"Relation(e2,e1)"``.
    y_pred_labels : array-like of str, shape (n,) or (n_layers, n)
        Predicted labels in the same format.

    Returns
    -------
    float, or ndarray of shape (n_layers,) when ``y_pred_labels`` is 2-D; NaN when the gold
    labels contain no relation at all (the scorer divides by zero there).

    Examples
    --------
    >>> gold = ["Cause-Effect(e1,e2)", "Cause-Effect(e2,e1)", "Other"]
    >>> semeval2010_official_f1(gold, ["Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)", "Other"])
    0.5
    """
    return _score(
        np.asarray(y_true_labels, dtype=object),
        np.asarray(y_pred_labels, dtype=object),
        "semeval2010_official_f1",
    )


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


def _resample_weights(
    group_codes: np.ndarray, n_groups: int, n_boot: int, rng: np.random.Generator
):
    """Yield example weights of shape (chunk, n): how often each example is in each resample.

    Drawing ``n_groups`` group indices with replacement and counting them is exactly one
    bootstrap resample; done for a chunk of resamples in one array, then spread to examples.
    """
    n = group_codes.shape[0]
    chunk = max(1, min(n_boot, _BOOTSTRAP_CELLS // max(n, n_groups)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n_groups, size=(m, n_groups))
        flat = (np.arange(m)[:, None] * n_groups + idx).ravel()
        group_counts = np.bincount(flat, minlength=m * n_groups).reshape(m, n_groups)
        yield group_counts[:, group_codes]


def bootstrap_ci(
    y_true,
    y_pred,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups=None,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence interval of a metric.

    Each resample draws, with replacement, as many units as there are: examples by default, or
    whole groups when ``groups`` is given (a cluster bootstrap). For word-level tasks pass the
    sentence index of each word: words of one sentence share context and errors, so resampling
    words as if independent makes intervals too narrow; resampling sentences keeps that
    dependence. The interval is ``(q(alpha/2), q(1 - alpha/2))`` of the resampled scores. All
    layers are scored on the *same* resamples, so per-layer intervals are paired.

    Named metrics are computed from resample-weighted confusion matrices (one ``np.bincount``
    per chunk of resamples and layer), so 1000 resamples of 25k predictions x 7 layers take a
    second or two. A callable metric is called once per resample and layer (slow but general).

    Parameters
    ----------
    y_true : array-like of shape (n,)
    y_pred : array-like of shape (n,) or (n_layers, n)
    metric : one of :data:`METRICS`, or a callable ``metric(y_true, y_pred) -> float``
    n_boot : number of resamples
    alpha : 1 - confidence level (0.05 gives a 95% interval)
    seed : seed of the resampling generator (the only randomness)
    groups : array-like of shape (n,), optional
        Group id of each example (e.g. sentence index); resample groups instead of examples.

    Returns
    -------
    (low, high) : floats, or ndarrays of shape (n_layers,) when ``y_pred`` is 2-D.

    Examples
    --------
    >>> y = np.array([0, 1] * 50)
    >>> low, high = bootstrap_ci(y, y, "accuracy", n_boot=100)
    >>> (low, high)
    (1.0, 1.0)
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if isinstance(metric, str) and metric not in _FROM_CONFUSION:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS} or pass a callable")
    y_true, y_pred, was_1d = _as_layers(y_true, y_pred)
    if metric == "semeval2010_official_f1":
        y_true, y_pred = y_true.astype(object), y_pred.astype(object)
    n_layers, n = y_pred.shape
    if groups is None:
        group_codes, n_groups = np.arange(n), n
    else:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
        _, group_codes = np.unique(groups, return_inverse=True)
        n_groups = int(group_codes.max()) + 1

    rng = np.random.default_rng(seed)
    stats = np.empty((n_boot, n_layers))
    row = 0
    if callable(metric):
        examples = np.arange(n)
        for weights in _resample_weights(group_codes, n_groups, n_boot, rng):
            for w in weights:
                take = np.repeat(examples, w)
                stats[row] = [
                    metric(y_true[take], y_pred[layer, take]) for layer in range(n_layers)
                ]
                row += 1
    elif metric == "accuracy":
        # Accuracy needs only the number of correct examples in each resample: one matrix
        # product of resample weights and hits for all layers. Counts are integers, exact in
        # float64 in any summation order, so this equals the confusion-matrix path bit for bit.
        hits = (np.asarray(y_true)[None, :] == y_pred).astype(np.float64).T  # (n, n_layers)
        for weights in _resample_weights(group_codes, n_groups, n_boot, rng):
            m = weights.shape[0]
            weights = weights.astype(np.float64)
            stats[row : row + m] = (weights @ hits) / weights.sum(axis=1)[:, None]
            row += m
    else:
        labels, true_codes, pred_codes = _encode(y_true, y_pred)
        k = len(labels)
        from_confusion = _FROM_CONFUSION[metric]
        # Only (true, pred) pairs that occur can get weight: count over those, not all K*K cells.
        pair_codes = true_codes[None, :] * k + pred_codes
        pairs, compact = np.unique(pair_codes, return_inverse=True)
        compact = compact.reshape(pair_codes.shape)
        n_pairs = len(pairs)
        for weights in _resample_weights(group_codes, n_groups, n_boot, rng):
            m = weights.shape[0]
            confusion = np.zeros((m, n_layers, k * k))
            offsets = np.arange(m)[:, None] * n_pairs
            for layer in range(n_layers):
                keys = (offsets + compact[layer][None, :]).ravel()
                counts = np.bincount(keys, weights=weights.ravel(), minlength=m * n_pairs)
                confusion[:, layer, pairs] = counts.reshape(m, n_pairs)
            stats[row : row + m] = from_confusion(confusion.reshape(m, n_layers, k, k), labels)
            row += m

    low, high = np.nanquantile(stats, [alpha / 2, 1 - alpha / 2], axis=0)
    if was_1d:
        return float(low[0]), float(high[0])
    return low, high


def get_metric(name: str) -> Callable:
    """Return the public metric function called ``name`` (one of :data:`METRICS`)."""
    functions: dict[str, Callable] = {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "semeval2010_official_f1": semeval2010_official_f1,
    }
    if name not in functions:
        raise ValueError(f"unknown metric {name!r}; choose one of {METRICS}")
    return functions[name]


__all__ = [
    "METRICS",
    "accuracy",
    "bootstrap_ci",
    "get_metric",
    "macro_f1",
    "semeval2010_official_f1",
]
