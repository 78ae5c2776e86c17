"""Layer summaries: *where* in the encoder a probing task gets solved.

Two summaries from Tenney, Das & Pavlick (2019), "BERT Rediscovers the Classical NLP Pipeline",
ACL 2019, arXiv:1905.05950, section 3 (layers named ``0..L``, 0 = embedding output):

**Scalar mixing weights.** The probe reads ``mix = gamma * sum_l s_l h_l`` with
``s = softmax(w)``, the scalar mix of ELMo (Peters et al., 2018) and jiant, learned jointly with
the classifier. Its *expected layer* is ``E_s[l] = sum_{l=0}^{L} l * s_l``
(:func:`expected_layer`).

**Cumulative scoring.** Probe ``P^(l)`` ("mix-l") reads the scalar mix of layers ``0..l`` only.
The differential score ``Delta^(l) = Score(P^(l)) - Score(P^(l-1))`` for ``l = 1..L`` says how
much layer ``l`` adds, and the *center of gravity* is
``E_Delta[l] = sum_{l=1}^{L} l * Delta^(l) / sum_{l=1}^{L} Delta^(l)``
(:func:`center_of_gravity`). The layer-0 score is not a differential and does not enter; deltas
are used signed, not clipped at 0. Both details were checked against the authors' released
analysis (``nyu-mll/jiant``, ``probing/analysis_bertlayer_ACL_camera_ready.ipynb``,
``_compute_exp_layer(..., min_layer=1)``). Fed the authors' released per-layer numbers, these
functions reproduce the Table 1 BERT-large ``E_Delta`` of all 8 tasks and ``E_s`` of 6 (see
``tests/fixtures/tenney2019_bert_large.json`` for the SPR/Relations ``E_s`` caveat).

Caveat worth stating in any report: mixing weights conflate how useful a layer is with how large
its activations are (layers of BERT differ in norm), so ``normalize_layers=True`` rescales every
layer to unit mean square before mixing; the published numbers used raw activations.

Examples
--------
>>> expected_layer([0.0, 0.25, 0.75])
1.75
>>> center_of_gravity([0.50, 0.80, 0.90, 0.90])   # gains of .3 at layer 1 and .1 at layer 2
1.25
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from probe.probes.metrics import get_metric
from probe.probes.summary_rules import MIN_COG_GAIN_POINTS, center_of_gravity_is_meaningful

_PREDICT_BATCH = 4096


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch intra-op thread for the block (restored after): the minibatch steps are small."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# summaries of per-layer numbers
# --------------------------------------------------------------------------------------------


def expected_layer(weights) -> float | np.ndarray:
    """Expected layer under mixing weights: ``sum_l l * s_l / sum_l s_l``, layers ``0..L``.

    Parameters
    ----------
    weights : array-like of shape (..., n_layers)
        Softmax-normalised scalar-mix weights ``s_0..s_L`` (renormalised here, so unnormalised
        non-negative weights work too).

    Returns
    -------
    float, or ndarray of shape ``weights.shape[:-1]``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim < 1 or weights.shape[-1] < 1:
        raise ValueError(f"weights must have shape (..., n_layers), got {weights.shape}")
    if np.any(weights < 0):
        raise ValueError("mixing weights must be non-negative (pass softmax(w), not w)")
    layers = np.arange(weights.shape[-1])
    value = (weights * layers).sum(axis=-1) / weights.sum(axis=-1)
    return float(value) if value.ndim == 0 else value


def differential_scores(cumulative_scores) -> np.ndarray:
    """``Delta^(l) = score(mix-l) - score(mix-(l-1))`` for ``l = 1..L``.

    Parameters
    ----------
    cumulative_scores : array-like of shape (..., L + 1)
        Score of the probe on layers ``0..k`` for ``k = 0..L``.

    Returns
    -------
    ndarray of shape (..., L); entry ``l - 1`` is ``Delta^(l)``.
    """
    scores = np.asarray(cumulative_scores, dtype=np.float64)
    if scores.ndim < 1 or scores.shape[-1] < 2:
        raise ValueError(
            f"need cumulative scores of at least 2 layers, shape (..., L + 1); got {scores.shape}"
        )
    return np.diff(scores, axis=-1)


def center_of_gravity_from_deltas(deltas) -> float | np.ndarray:
    """``sum_{l=1}^{L} l * Delta^(l) / sum_{l=1}^{L} Delta^(l)`` from differential scores.

    Parameters
    ----------
    deltas : array-like of shape (..., L)
        ``Delta^(1)..Delta^(L)`` (signed).

    Returns
    -------
    float, or ndarray of shape ``deltas.shape[:-1]``; NaN where the deltas sum to 0 (no layer
    adds anything, so there is no center).
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim < 1 or deltas.shape[-1] < 1:
        raise ValueError(f"deltas must have shape (..., L), got {deltas.shape}")
    layers = np.arange(1, deltas.shape[-1] + 1)
    total = deltas.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total != 0, (deltas * layers).sum(axis=-1) / total, np.nan)
    return float(value) if value.ndim == 0 else value


def center_of_gravity(cumulative_scores) -> float | np.ndarray:
    """Center of gravity ``E_Delta[l]`` of cumulative (mix-k) scores, Tenney et al. (2019).

    Parameters
    ----------
    cumulative_scores : array-like of shape (..., L + 1)
        ``score(mix-0), ..., score(mix-L)``, as returned by :func:`cumulative_mix_scores`.

    Returns
    -------
    float, or ndarray of shape ``cumulative_scores.shape[:-1]``; NaN if ``score(mix-L) ==
    score(mix-0)``. Because the deltas telescope, the denominator is ``score(mix-L) -
    score(mix-0)``.
    """
    return center_of_gravity_from_deltas(differential_scores(cumulative_scores))


# --------------------------------------------------------------------------------------------
# scalar-mix probe: plain-function core
# --------------------------------------------------------------------------------------------


def _as_tensor(X) -> torch.Tensor:
    """(n_layers, n, d) features as a CPU tensor; float16/float32 kept to spare memory."""
    array = np.asarray(X)
    if array.ndim != 3:
        raise ValueError(f"X must have shape (n_layers, n, d_model), got shape {array.shape}")
    if array.dtype not in (np.float16, np.float32):
        array = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array))


def _layer_scales(X: torch.Tensor, normalize: bool) -> torch.Tensor:
    """1 / root-mean-square of each layer (so every layer has unit mean square), or ones."""
    if not normalize:
        return torch.ones(X.shape[0], dtype=torch.float32)
    mean_square = torch.zeros(X.shape[0], dtype=torch.float64)
    for start in range(0, X.shape[1], _PREDICT_BATCH):
        chunk = X[:, start : start + _PREDICT_BATCH].double()
        mean_square += chunk.pow(2).sum(dim=(1, 2))
    mean_square /= X.shape[1] * X.shape[2]
    return mean_square.clamp_min(1e-12).rsqrt().float()


def _forward(params: dict[str, torch.Tensor], scales: torch.Tensor, xb: torch.Tensor):
    """Logits of shape (batch, n_classes) for features ``xb`` of shape (n_layers, batch, d)."""
    mix_weights = torch.softmax(params["w"], dim=0) * scales
    mix = params["gamma"] * torch.einsum("l,lnd->nd", mix_weights, xb.float())
    return mix @ params["W"].T + params["b"]


def _mean_loss(params, scales, X: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy over ``X`` (labels -100 ignored), computed in batches."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, X.shape[1], _PREDICT_BATCH):
            yb = y[start : start + _PREDICT_BATCH]
            logits = _forward(params, scales, X[:, start : start + _PREDICT_BATCH])
            loss = torch.nn.functional.cross_entropy(logits, yb, ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((yb != -100).sum())
    return total / max(count, 1)


def fit_scalar_mix(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    X_dev: torch.Tensor | None = None,
    y_dev: torch.Tensor | None = None,
    *,
    C: float = 1.0,
    lr: float = 0.01,
    batch_size: int = 256,
    max_epochs: int = 100,
    patience: int = 5,
    tol: float = 1e-4,
    normalize_layers: bool = False,
    seed: int = 0,
) -> dict:
    """Train a scalar mix and a linear softmax classifier jointly with Adam.

    Objective (per example): ``cross_entropy + (||W||^2 + gamma^2) / (2 C n)``, i.e. the L2
    penalty of ``sklearn.linear_model.LogisticRegression(C=C)`` divided by ``n``. ``gamma`` is
    penalised too: with a linear classifier it is redundant with the scale of ``W``, and left
    free it would grow without bound while ``W`` shrinks to dodge the penalty. Training stops
    when the monitored loss (dev cross-entropy if a dev set is given, else the training
    objective) has not improved by ``tol`` for ``patience`` epochs; the best epoch is restored.
    Deterministic: parameters start at ``w = 0`` (uniform mix), ``gamma = 1``, ``W = b = 0``,
    and only the shuffling is random (a local generator seeded with ``seed``).

    Parameters
    ----------
    X : tensor of shape (n_layers, n, d_model)
    y : int64 tensor of shape (n,), class codes ``0..n_classes-1``
    n_classes : number of classes
    X_dev, y_dev : optional dev set for early stopping; ``y_dev == -100`` marks ignored examples

    Returns
    -------
    dict with numpy arrays ``w`` (n_layers,), ``gamma`` (), ``W`` (n_classes, d_model),
    ``b`` (n_classes,), ``scales`` (n_layers,), and ``n_epochs``, ``best_epoch``,
    ``loss_curve`` (monitored loss per epoch).
    """
    n_layers, n, d = X.shape
    scales = _layer_scales(X, normalize_layers)
    params = {
        "w": torch.zeros(n_layers, requires_grad=True),
        "gamma": torch.ones((), requires_grad=True),
        "W": torch.zeros(n_classes, d, requires_grad=True),
        "b": torch.zeros(n_classes, requires_grad=True),
    }
    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    penalty_scale = 1.0 / (2.0 * C * n)

    best_loss, best_epoch, best_state, curve = float("inf"), 0, None, []
    epochs_without_gain = 0
    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(n, generator=generator)
        epoch_objective = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            logits = _forward(params, scales, X[:, idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            loss = loss + penalty_scale * (params["W"].pow(2).sum() + params["gamma"].pow(2))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_objective += loss.item() * idx.shape[0] / n
        monitored = epoch_objective if X_dev is None else _mean_loss(params, scales, X_dev, y_dev)
        curve.append(monitored)
        if monitored < best_loss - tol:
            best_loss, best_epoch, epochs_without_gain = monitored, epoch, 0
            best_state = {k: v.detach().clone() for k, v in params.items()}
        else:
            epochs_without_gain += 1
            if epochs_without_gain >= patience:
                break
    state = best_state if best_state is not None else {k: v.detach() for k, v in params.items()}
    return {
        **{k: v.numpy().astype(np.float64) for k, v in state.items()},
        "scales": scales.numpy().astype(np.float64),
        "n_epochs": len(curve),
        "best_epoch": best_epoch,
        "loss_curve": curve,
    }


def _family_forward(params, weight_mask, scales, xb: torch.Tensor) -> torch.Tensor:
    """Logits of shape (n_probes, batch, n_classes) of every probe of a cumulative family.

    ``xb`` has shape (n_layers, batch, d); probe ``k`` mixes layers ``0..k`` (the other layers'
    weights are masked to exactly 0, so they get exactly zero gradient).
    """
    mix_weights = torch.softmax(params["w"] + weight_mask, dim=1) * scales  # (K, L)
    mix = params["gamma"][:, None, None] * torch.einsum("kl,lnd->knd", mix_weights, xb.float())
    return torch.baddbmm(params["b"][:, None, :], mix, params["W"].transpose(1, 2))


def _family_dev_losses(params, weight_mask, scales, X: torch.Tensor, y: torch.Tensor) -> list:
    """Mean cross-entropy of every probe of the family over ``X`` (labels -100 ignored)."""
    n_probes = params["w"].shape[0]
    total = torch.zeros(n_probes, dtype=torch.float64)
    count = 0
    with torch.no_grad():
        for start in range(0, X.shape[1], _PREDICT_BATCH):
            yb = y[start : start + _PREDICT_BATCH]
            logits = _family_forward(
                params, weight_mask, scales, X[:, start : start + _PREDICT_BATCH]
            )
            losses = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), yb.repeat(n_probes), ignore_index=-100, reduction="none"
            )
            total += losses.view(n_probes, -1).sum(1, dtype=torch.float64)
            count += int((yb != -100).sum())
    return (total / max(count, 1)).tolist()


def fit_cumulative_scalar_mix(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    X_dev: torch.Tensor | None = None,
    y_dev: torch.Tensor | None = None,
    *,
    C: float = 1.0,
    lr: float = 0.01,
    batch_size: int = 256,
    max_epochs: int = 100,
    patience: int = 5,
    tol: float = 1e-4,
    normalize_layers: bool = False,
    seed: int = 0,
) -> list[dict]:
    """:func:`fit_scalar_mix` on layers ``0..k`` for every ``k``, all probes in one batched job.

    Probe ``k`` is the same model, objective, initialisation, shuffling and stopping rule as
    ``fit_scalar_mix(X[:k+1], ...)``: its mixing weights over layers ``k+1..`` are masked to
    exactly zero (no gradient reaches them), every probe sees the same minibatches (the shuffling
    generator is seeded alike), and Adam is elementwise, so stacking the probes' parameters
    changes only the order of floating-point sums. One step costs a few batched operations for
    all ``n_layers`` probes instead of a few per probe: the fits are overhead-bound, and the old
    loop over ``k`` gathered the same minibatch ``n_layers`` times. A probe whose dev loss stopped
    improving keeps its best epoch; the job ends when every probe has stopped.

    Returns
    -------
    list of ``fit_scalar_mix`` results, entry ``k`` for layers ``0..k``.
    """
    n_layers, n, d = X.shape
    scales = torch.ones(n_layers, n_layers, dtype=torch.float32)
    for k in range(n_layers):
        scales[k, : k + 1] = _layer_scales(X[: k + 1], normalize_layers)
    weight_mask = torch.full((n_layers, n_layers), float("-inf")).triu(1)
    params = {
        "w": torch.zeros(n_layers, n_layers, requires_grad=True),
        "gamma": torch.ones(n_layers, requires_grad=True),
        "W": torch.zeros(n_layers, n_classes, d, requires_grad=True),
        "b": torch.zeros(n_layers, n_classes, requires_grad=True),
    }
    optimizer = torch.optim.Adam(list(params.values()), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    penalty_scale = 1.0 / (2.0 * C * n)
    tracks = [_Track() for _ in range(n_layers)]
    for epoch in range(1, max_epochs + 1):
        order = torch.randperm(n, generator=generator)
        objective = torch.zeros(n_layers, dtype=torch.float64)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            logits = _family_forward(params, weight_mask, scales, X.index_select(1, idx))
            losses = (
                torch.nn.functional.cross_entropy(
                    logits.flatten(0, 1), y[idx].repeat(n_layers), reduction="none"
                )
                .view(n_layers, -1)
                .mean(1)
            )
            losses = losses + penalty_scale * (
                params["W"].pow(2).sum((1, 2)) + params["gamma"].pow(2)
            )
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # the probes share no parameter: each gets its own gradient
            optimizer.step()
            objective += losses.detach().double() * idx.shape[0] / n
        monitored = (
            objective.tolist()
            if X_dev is None
            else _family_dev_losses(params, weight_mask, scales, X_dev, y_dev)
        )
        for k, track in enumerate(tracks):
            if not track.stopped:
                track.update(epoch, monitored[k], params, k, tol=tol, patience=patience)
        if all(track.stopped for track in tracks):
            break
    results = []
    for k, track in enumerate(tracks):
        state = track.best_state or {name: v.detach()[k].clone() for name, v in params.items()}
        results.append(
            {
                "w": state["w"][: k + 1].numpy().astype(np.float64),
                "gamma": state["gamma"].numpy().astype(np.float64),
                "W": state["W"].numpy().astype(np.float64),
                "b": state["b"].numpy().astype(np.float64),
                "scales": scales[k, : k + 1].numpy().astype(np.float64),
                "n_epochs": len(track.curve),
                "best_epoch": track.best_epoch,
                "loss_curve": track.curve,
            }
        )
    return results


class _Track:
    """Early-stopping bookkeeping of one probe of a cumulative family."""

    def __init__(self) -> None:
        self.best_loss = float("inf")
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.curve: list[float] = []
        self.without_gain = 0
        self.stopped = False

    def update(self, epoch: int, loss: float, params, k: int, *, tol: float, patience: int) -> None:
        self.curve.append(loss)
        if loss < self.best_loss - tol:
            self.best_loss, self.best_epoch, self.without_gain = loss, epoch, 0
            self.best_state = {name: v.detach()[k].clone() for name, v in params.items()}
        else:
            self.without_gain += 1
            self.stopped = self.without_gain >= patience


# --------------------------------------------------------------------------------------------
# scalar-mix probe: sklearn-style class
# --------------------------------------------------------------------------------------------


class ScalarMixProbe(ClassifierMixin, BaseEstimator):
    """Linear probe on a learned softmax-weighted mix of all layers (ELMo/jiant scalar mix).

    ``logits = gamma * (sum_l s_l c_l h_l) @ coef_.T + intercept_`` with ``s = softmax(w)`` and
    ``c_l`` the fixed layer scale (1, or 1/RMS with ``normalize_layers``). See
    :func:`fit_scalar_mix` for the objective and stopping rule.

    Parameters
    ----------
    C : inverse L2 strength, as in ``LogisticRegression``
    lr : Adam learning rate
    batch_size : examples per step
    max_epochs, patience, tol : early stopping on dev loss (training objective without dev)
    normalize_layers : rescale each layer to unit mean square (training-set statistic) first
    seed : seed of the shuffling generator

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    layer_weights_ : ndarray of shape (n_layers,), the softmax mixing weights ``s``
    gamma_ : float
    coef_ : ndarray of shape (n_classes, d_model)
    intercept_ : ndarray of shape (n_classes,)
    layer_scale_ : ndarray of shape (n_layers,)
    n_layers_, n_features_in_ : int
    n_iter_ : epochs run; ``best_epoch_``: the epoch whose parameters were kept
    loss_curve_ : list of the monitored loss per epoch

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> X = rng.normal(size=(3, 200, 4)); X[1, :, 0] += 3 * y  # the signal lives in layer 1
    >>> probe = ScalarMixProbe(lr=0.05, batch_size=50).fit(X, y)
    >>> int(np.argmax(probe.layer_weights_)), probe.score(X, y) > 0.9
    (1, True)
    """

    def __init__(
        self,
        C: float = 1.0,
        lr: float = 0.01,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 5,
        tol: float = 1e-4,
        normalize_layers: bool = False,
        seed: int = 0,
    ):
        self.C = C
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.tol = tol
        self.normalize_layers = normalize_layers
        self.seed = seed

    def fit(self, X, y, X_dev=None, y_dev=None) -> ScalarMixProbe:
        """Fit on features ``X`` (n_layers, n, d_model) and labels ``y`` (n,).

        ``X_dev``/``y_dev`` (same layout) drive early stopping; dev labels unseen in ``y`` are
        ignored there (no probe can predict them).
        """
        Xt, codes, Xd, yd = self._prepare(X, y, X_dev, y_dev)
        state = fit_scalar_mix(Xt, codes, len(self.classes_), Xd, yd, **self._fit_options())
        return self._set_state(state, Xt.shape)

    def _prepare(self, X, y, X_dev, y_dev):
        """Check the inputs; set ``classes_``; return tensors ``(X, codes, X_dev, dev codes)``."""
        for name in ("C", "lr", "batch_size", "max_epochs"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if (X_dev is None) != (y_dev is None):
            raise ValueError("pass both X_dev and y_dev, or neither")
        Xt = _as_tensor(X)
        y = np.asarray(y)
        if y.shape != (Xt.shape[1],):
            raise ValueError(f"y must have shape ({Xt.shape[1]},), got {y.shape}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        Xd = yd = None
        if X_dev is not None:
            Xd = _as_tensor(X_dev)
            if Xd.shape[0] != Xt.shape[0] or Xd.shape[2] != Xt.shape[2]:
                raise ValueError(
                    f"X_dev has shape {tuple(Xd.shape)}, incompatible with X {tuple(Xt.shape)}"
                )
            yd = torch.from_numpy(self._codes_or_ignore(np.asarray(y_dev)))
        return Xt, torch.from_numpy(codes.astype(np.int64)), Xd, yd

    def _fit_options(self) -> dict:
        return {
            "C": self.C,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "tol": self.tol,
            "normalize_layers": self.normalize_layers,
            "seed": self.seed,
        }

    def _set_state(self, state: dict, shape: tuple[int, ...]) -> ScalarMixProbe:
        """Take the fitted values of a :func:`fit_scalar_mix` result (``shape`` of X)."""
        w = state["w"]
        self.layer_weights_ = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
        self.gamma_ = float(state["gamma"])
        self.coef_ = state["W"]
        self.intercept_ = state["b"]
        self.layer_scale_ = state["scales"]
        self.n_layers_, self.n_features_in_ = shape[0], shape[2]
        self.n_iter_ = state["n_epochs"]
        self.best_epoch_ = state["best_epoch"]
        self.loss_curve_ = state["loss_curve"]
        return self

    def _codes_or_ignore(self, y: np.ndarray) -> np.ndarray:
        """Class codes of ``y``; -100 (cross-entropy's ignore index) for unseen labels."""
        pos = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        return np.where(self.classes_[pos] == y, pos, -100).astype(np.int64)

    def decision_function(self, X) -> np.ndarray:
        """Logits of shape (n, n_classes) for features of shape (n_layers, n, d_model)."""
        check_is_fitted(self, "coef_")
        Xt = _as_tensor(X)
        if Xt.shape[0] != self.n_layers_ or Xt.shape[2] != self.n_features_in_:
            raise ValueError(
                f"X has shape {tuple(Xt.shape)}; this probe was fitted on "
                f"({self.n_layers_}, n, {self.n_features_in_})"
            )
        # Mixing in float64 numpy would copy X; reuse the torch forward with fitted values.
        params = {
            "w": torch.from_numpy(np.log(self.layer_weights_)).float(),
            "gamma": torch.tensor(self.gamma_, dtype=torch.float32),
            "W": torch.from_numpy(self.coef_).float(),
            "b": torch.from_numpy(self.intercept_).float(),
        }
        scales = torch.from_numpy(self.layer_scale_).float()
        with torch.no_grad():
            chunks = [
                _forward(params, scales, Xt[:, start : start + _PREDICT_BATCH])
                for start in range(0, Xt.shape[1], _PREDICT_BATCH)
            ]
        return torch.cat(chunks).numpy()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of shape (n, n_classes)."""
        return torch.softmax(torch.from_numpy(self.decision_function(X)), dim=1).numpy()

    def predict(self, X) -> np.ndarray:
        """Predicted labels of shape (n,)."""
        logits = self.decision_function(X)  # first: it raises NotFittedError before classes_
        return self.classes_[np.argmax(logits, axis=1)]


# --------------------------------------------------------------------------------------------
# cumulative scoring
# --------------------------------------------------------------------------------------------


def cumulative_mix_scores(
    X,
    y,
    X_dev,
    y_dev,
    X_test=None,
    y_test=None,
    *,
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy",
    return_probes: bool = False,
    batched: bool = True,
    **probe_params,
) -> np.ndarray | tuple[np.ndarray, list[ScalarMixProbe]]:
    """Scores of mix-k probes, ``k = 0..L``: probe ``k`` reads the scalar mix of layers ``0..k``.

    Each probe is a :class:`ScalarMixProbe` trained on ``X[:k+1]`` (dev set for early stopping)
    and scored on the test set (the dev set if none is given; Tenney et al. report dev scores).
    Feed the result to :func:`center_of_gravity`.

    Parameters
    ----------
    X, X_dev, X_test : arrays of shape (n_layers, n_split, d_model)
    y, y_dev, y_test : arrays of shape (n_split,)
    metric : name in :data:`probe.probes.metrics.METRICS` or ``metric(y_true, y_pred)``
    return_probes : also return the fitted probes
    batched : fit all probes in one job (:func:`fit_cumulative_scalar_mix`, one torch thread:
        the steps are small, and on a busy machine intra-op threads mostly wait for each other);
        ``False`` fits one :class:`ScalarMixProbe` per ``k`` (the reference it is tested against)
    **probe_params : passed to :class:`ScalarMixProbe`

    Returns
    -------
    scores : ndarray of shape (n_layers,), entry ``k`` = score of mix-k
    probes : list of ScalarMixProbe (only with ``return_probes=True``)
    """
    score_fn = get_metric(metric) if isinstance(metric, str) else metric
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is None:
        X_test, y_test = X_dev, y_dev
    n_layers = np.shape(X)[0]
    if batched:
        template = ScalarMixProbe(**probe_params)
        Xt, codes, Xd, yd = template._prepare(X, y, X_dev, y_dev)
        with _one_thread():
            states = fit_cumulative_scalar_mix(
                Xt, codes, len(template.classes_), Xd, yd, **template._fit_options()
            )
        probes = []
        for k, state in enumerate(states):
            probe = clone(template)
            probe.classes_ = template.classes_
            probes.append(probe._set_state(state, (k + 1, *Xt.shape[1:])))
    else:
        probes = [
            ScalarMixProbe(**probe_params).fit(X[: k + 1], y, X_dev[: k + 1], y_dev)
            for k in range(n_layers)
        ]
    scores = np.array(
        [
            score_fn(np.asarray(y_test), probe.predict(X_test[: k + 1]))
            for k, probe in enumerate(probes)
        ]
    )
    return (scores, probes) if return_probes else scores


__all__ = [
    "MIN_COG_GAIN_POINTS",
    "ScalarMixProbe",
    "center_of_gravity",
    "center_of_gravity_from_deltas",
    "center_of_gravity_is_meaningful",
    "cumulative_mix_scores",
    "differential_scores",
    "expected_layer",
    "fit_cumulative_scalar_mix",
    "fit_scalar_mix",
]
