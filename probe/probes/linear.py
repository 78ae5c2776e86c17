"""Linear probes fitted on every layer in one job: L2-penalised multinomial logistic regression.

:class:`LayerwiseLogisticRegression` fits one probe per layer on activations of shape
``(n_layers, n_samples, n_features)`` and chooses the L2 strength of each layer on a dev split.
The objective is exactly scikit-learn's ``LogisticRegression(C=C)`` (lbfgs, multinomial)::

    C * sum_i log_loss_i + 0.5 * ||W||^2         (intercept not penalised)

so coefficients, predictions and log-loss agree with scikit-learn's for the same ``C`` (for two
classes, with scikit-learn's binary parametrisation, see below); it is only faster. Where the
speed comes from, measured on UD EWT UPOS with MiniLM features (204k words x 384 features,
17 classes, 7 layers, 5 values of C; see ``benchmarks/bench_probe_fit.py``):

* **Fewer iterations: preconditioning.** Transformer activations are badly conditioned
  (LayerNorm makes the covariance singular; a few outlier dimensions dominate), which is what
  makes plain L-BFGS run into ``max_iter``. We run L-BFGS on ``V`` with ``W = T(V)``, where
  ``T = (a Sigma + lam I)^(-1/2)`` whitens the feature covariance ``Sigma`` (estimated on 32k
  rows) with the penalty's share ``lam`` of the curvature. This is a change of variables, not
  of objective: the minimiser in ``W`` is the same.
* **Fewer iterations: warm starts along the regularisation path.** The grid of C is fitted from
  the strongest penalty (cheap, well conditioned) to the weakest, each C starting from the
  previous solution *and* its L-BFGS curvature pairs, corrected exactly for the new penalty.
  Together: 86-163 iterations per layer for the whole grid of 5 C, against ~480 for
  scikit-learn (87-100 per C, most stopped by ``max_iter=100``).
* **Cheaper iterations: k - 1 columns.** With an L2 penalty the optimal class weights sum to
  zero (adding one vector to every class leaves the loss unchanged and only raises the penalty),
  so we optimise in an orthonormal basis of that subspace: 16 columns instead of 17 for UPOS,
  which MKL's skinny GEMM runs markedly faster. Loss and gradient take one chunked pass in
  float32 (about the cost of one scikit-learn float32 iteration: 170 ms versus 190 ms, 1 core).
* **Layers in parallel threads.** Layers are independent problems; on CPU each worker thread
  fits whole layers with one torch intra-op thread. Intra-op threads would meet at a barrier
  after every small operation, which on a busy machine costs a scheduler tick each time
  (measured 10x slower per evaluation on 2 busy cores); independent layers need no barrier.
  One layer at a time per worker is held in float32, so float16 memmaps of all layers work.

Convergence follows scikit-learn: stop when the largest absolute entry of the gradient of the
mean-loss objective ``mean_i log_loss_i + ||W||^2 / (2 C n)`` is below ``tol``, or after
``max_iter`` L-BFGS iterations per C (a :class:`~sklearn.exceptions.ConvergenceWarning` then names
the layers and C that did not converge), or when the loss stops decreasing at float32 resolution
(scipy's ``ftol``). Note that this absolute tolerance is loose for weak penalties on large data:
moving from C to 10 C changes the gradient by ``0.9 ||W|| / (C n)``, often below ``tol``, and then
the weaker C keeps the stronger C's solution (zero iterations), exactly as a warm-started
scikit-learn fit would.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import helmert
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from probe.runtime import resolve_device

#: Default grid of C (scikit-learn's meaning: inverse L2 strength, per-sample loss summed).
#: On UD EWT UPOS with MiniLM features the dev optimum lies inside 1e-3..1e1 for every layer,
#: and strong penalties are cheap to fit, so five points a decade apart cover the useful range.
DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)

# Rows per chunk on CPU: keeps temporaries small; with one intra-op thread per layer the pass
# costs the same from 2048 to 16384 rows (measured), so pick a middle value.
_CPU_CHUNK = 4096
# Below this many values per layer, fit layers one after another: the work is overhead-bound
# and Python threads would only contend for the GIL.
_SMALL = 1 << 21
_GPU_CHUNK = 1 << 20  # on GPU chunking only adds kernel launches; bound the temporaries instead
_PRECOND_ROWS = 32768  # rows used to estimate the covariance for the preconditioner
_CURVATURE = 0.01  # typical softmax curvature p(1-p) near the optimum (preconditioner scale)
_ARMIJO = 1e-4
_FTOL = 1e-9  # relative decrease below which the loss cannot resolve progress
_MAX_BACKTRACK = 30


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


@contextmanager
def _torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch intra-op threads, restoring the setting after."""
    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _shape3(X) -> tuple[int, int, int]:
    """Shape of a (n_layers, n_samples, n_features) array-like without reading its data."""
    if hasattr(X, "shape"):
        shape = tuple(X.shape)
    else:
        layers = list(X)
        inner = {tuple(np.shape(layer)) for layer in layers}
        if len(inner) != 1:
            raise ValueError(f"all layers must have the same shape, got {sorted(inner)}")
        shape = (len(layers), *inner.pop())
    if len(shape) != 3:
        raise ValueError(
            f"X must have shape (n_layers, n_samples, n_features), got shape {shape}; "
            "for a single layer use X[None]"
        )
    return shape  # type: ignore[return-value]


def _layer_tensor(X, layer: int, device: torch.device, chunk: int = 65536) -> torch.Tensor:
    """Layer ``layer`` of ``X`` as a contiguous float32 tensor on ``device``, shape (n, d).

    A float16 memmap is converted one block of rows at a time, so no float64 (or whole-array
    float32) copy of ``X`` is ever made; a writable float32 numpy layer is used without copying.
    """
    if isinstance(X, torch.Tensor):
        return X[layer].to(device=device, dtype=torch.float32).contiguous()
    part = X[layer]
    if (
        isinstance(part, np.ndarray)
        and part.dtype == np.float32
        and part.flags.c_contiguous
        and part.flags.writeable
        and not isinstance(part, np.memmap)
    ):
        return torch.from_numpy(part).to(device)
    n, d = np.shape(part)
    out = torch.empty((n, d), dtype=torch.float32, device=device)
    for start in range(0, n, chunk):
        block = np.asarray(part[start : start + chunk], dtype=np.float32)
        out[start : start + chunk] = torch.from_numpy(block).to(device)
    return out


def _check_labels(y, n_samples: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), got {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
        raise ValueError(f"{name} must hold integer class ids >= 0, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def _column_stats(X: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each column, accumulated in float64 chunk by chunk."""
    n, d = X.shape
    total = torch.zeros(d, dtype=torch.float64, device=X.device)
    for start in range(0, n, chunk):
        total += X[start : start + chunk].sum(0, dtype=torch.float64)
    mean = total / n
    mean32 = mean.float()
    sq = torch.zeros(d, dtype=torch.float64, device=X.device)
    for start in range(0, n, chunk):
        sq += (X[start : start + chunk] - mean32).square().sum(0, dtype=torch.float64)
    return mean, (sq / n).sqrt()


@dataclass
class _Layer:
    """One layer's training problem in the coordinates the optimiser works in.

    ``M = D W`` maps the penalised coefficients ``W`` (d, k-1) to weights on raw features, where
    ``D = diag(1 / scale)``; logits are ``(X M + c - mean @ M) @ Q`` with ``Q`` (k-1, k) an
    orthonormal basis of class vectors summing to zero.
    """

    X: torch.Tensor  # (n, d) float32
    y: torch.Tensor  # (n,) int64, indices into the classes present in training
    mean: torch.Tensor  # (d,) float32, centring (part of the model only if standardising)
    inv_scale: torch.Tensor  # (d,) float32, ones unless standardising
    eigvec: torch.Tensor  # (d, d) float32, eigenvectors of the covariance of X * inv_scale
    eigval: torch.Tensor  # (d,) float32
    Q: torch.Tensor  # (k-1, k) float32
    chunk: int
    cancel: threading.Event  # set by the caller to stop a worker thread early

    def loss_grad(
        self, M: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed log-loss and its gradients w.r.t. ``M`` (d, k-1) and ``c`` (k-1,).

        One pass over the rows: each chunk's logits, softmax and gradient contribution are
        computed while the chunk is in cache. No host synchronisation happens here.
        """
        if self.cancel.is_set():
            raise _CancelledError
        X, Q = self.X, self.Q
        bias = c - self.mean @ M
        gM = torch.zeros_like(M)
        gc = torch.zeros_like(c)
        loss = torch.zeros((), dtype=torch.float64, device=X.device)
        for start in range(0, X.shape[0], self.chunk):
            Xc = X[start : start + self.chunk]
            yc = self.y[start : start + self.chunk, None]
            Z = torch.addmm(bias, Xc, M) @ Q  # (b, k) logits
            lse = torch.logsumexp(Z, 1, keepdim=True)
            loss += (lse.sum() - Z.gather(1, yc).sum()).double()
            R = Z.sub_(lse).exp_()  # softmax, in place
            R.scatter_add_(1, yc, torch.full_like(yc, -1, dtype=R.dtype))  # softmax - onehot
            G = R @ Q.T  # (b, k-1)
            gM.addmm_(Xc.T, G)
            gc += G.sum(0)
        gM -= torch.outer(self.mean, gc)  # the centring term in ``bias``
        return loss, gM, gc


class LayerStats:
    """Per-layer statistics of one training array, shared by every fit on that array.

    A fit spends part of its time on things that depend only on the training features, not on
    the labels or C: each layer's column mean and standard deviation, and the eigendecomposition
    of the feature covariance behind the preconditioner (for 2304-wide SemEval pair features,
    16 s per layer on a busy core, against under 5 s for the whole regularisation path). A
    control task (Hewitt & Liang 2019) is fitted on the same features as its task, once per
    seed; passing one ``LayerStats`` to all these fits computes each layer's statistics once.
    The shared values are the very tensors a lone fit would compute, so results are identical.

    Parameters
    ----------
    X : the training array the statistics belong to; a fit on any other array refuses them.
    """

    def __init__(self, X) -> None:
        self.X = X
        self._layers: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, compute: Callable[[], tuple[torch.Tensor, ...]]):
        """The statistics stored under ``key``, computed by ``compute()`` on first use."""
        with self._lock:
            found = self._layers.get(key)
        if found is None:
            found = compute()
            with self._lock:
                found = self._layers.setdefault(key, found)
        return found


class _Preconditioner:
    """Change of variables ``W = T(V)``, ``c = v / sqrt(a)`` making the Hessian close to identity.

    The Hessian of ``mean log-loss + lam/2 ||W||^2`` in ``W`` (d, k-1) is roughly
    ``a Sigma + lam I`` on every class column, with ``Sigma`` the feature covariance (singular
    for LayerNorm outputs) and ``a`` a typical softmax curvature ``p (1 - p)``. With
    ``Sigma = U diag(s) U^T``, ``T(V) = U diag((a s + lam)^(-1/2)) U^T V`` inverts that. ``T`` is
    symmetric, so the gradient in ``V`` is ``T`` applied to the gradient in ``W``. L-BFGS then
    only has to learn what this approximation misses (which samples are uncertain, class
    imbalance). A Kronecker factor for the classes (K-FAC style, curvature measured at the warm
    start) saved only ~10% of the iterations on UD EWT UPOS, so it is not used.
    """

    def __init__(self, U: torch.Tensor, s: torch.Tensor, lam: float):
        self.U = U
        self.phi = (_CURVATURE * s + lam).rsqrt()[:, None]  # (d, 1)
        self.phi_c = _CURVATURE**-0.5

    def to_w(self, V: torch.Tensor) -> torch.Tensor:
        return self.U @ (self.phi * (self.U.T @ V))

    def to_v(self, W: torch.Tensor) -> torch.Tensor:
        return self.U @ ((self.U.T @ W) / self.phi)

    def to_c(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.phi_c

    def to_cv(self, c: torch.Tensor) -> torch.Tensor:
        return c / self.phi_c


def _fit_one_c(
    layer: _Layer,
    W0: torch.Tensor,
    c0: torch.Tensor,
    lam: float,
    *,
    tol: float,
    max_iter: int,
    history: int,
    memory: list[tuple[torch.Tensor, torch.Tensor]],
    lam_prev: float | None,
    penalize_intercept: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int, bool, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Minimise ``mean log-loss + lam / 2 ||W||^2`` by preconditioned L-BFGS from ``(W0, c0)``.

    With ``penalize_intercept`` the penalty is ``lam / 2 (||W||^2 + ||c||^2)``, ``c`` being the
    intercept at the training mean of the features.

    ``memory`` holds the L-BFGS curvature pairs ``(s, y)`` of the previous C (fitted with penalty
    ``lam_prev``) in the unpreconditioned coordinates ``(W, c)``, flattened. The loss part of the
    Hessian does not depend on C and the penalty part is ``lam I``, so ``y + (lam - lam_prev) s``
    is an exact curvature pair of the new objective: the fit of the next C starts with a good
    inverse-Hessian estimate instead of a bare gradient step.

    Returns ``(W, c, n_iter, converged, memory)``.
    """
    n = layer.X.shape[0]
    d, km1 = W0.shape
    inv_scale = layer.inv_scale[:, None]
    Q = layer.Q

    def objective(W, c):
        loss, gM, gc = layer.loss_grad(inv_scale * W, c)
        gW = inv_scale * gM / n + lam * W
        f = loss / n + 0.5 * lam * W.double().square().sum()
        gc = gc / n
        if penalize_intercept:
            f = f + 0.5 * lam * c.double().square().sum()
            gc = gc + lam * c
        # Stop criterion on the gradient in scikit-learn's parametrisation (full k classes).
        gmax = torch.maximum((gW @ Q).abs().max(), (gc @ Q).abs().max()).double()
        return f, gW, gc, gmax

    T = _Preconditioner(layer.eigvec, layer.eigval, lam)

    def to_x(W, c):
        return torch.cat([T.to_v(W).reshape(-1), T.to_cv(c)])

    def from_x(x):
        return T.to_w(x[: d * km1].view(d, km1)), T.to_c(x[d * km1 :])

    def evaluate(x):
        f, gW, gc, gmax = objective(*from_x(x))
        # Chain rule: T is symmetric, so the gradient in x is T applied to the gradient in W.
        return f, torch.cat([T.to_w(gW).reshape(-1), T.to_c(gc)]), gmax

    def pair_to_x(s_flat, y_flat):
        s_x = torch.cat(
            [T.to_v(s_flat[: d * km1].view(d, km1)).reshape(-1), T.to_cv(s_flat[d * km1 :])]
        )
        y_x = torch.cat(
            [T.to_w(y_flat[: d * km1].view(d, km1)).reshape(-1), T.to_c(y_flat[d * km1 :])]
        )
        return s_x, y_x

    def pair_from_x(s_x, y_x):
        s_flat = torch.cat(
            [T.to_w(s_x[: d * km1].view(d, km1)).reshape(-1), T.to_c(s_x[d * km1 :])]
        )
        y_flat = torch.cat(
            [T.to_v(y_x[: d * km1].view(d, km1)).reshape(-1), T.to_cv(y_x[d * km1 :])]
        )
        return s_flat, y_flat

    f, gW, gc, gmax = objective(W0, c0)
    x = to_x(W0, c0)
    g = torch.cat([T.to_w(gW).reshape(-1), T.to_c(gc)])
    f_val, gmax_val = torch.stack([f, gmax]).tolist()
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    rho: list[torch.Tensor] = []
    gamma = 1.0  # the preconditioned Hessian is close to identity, so a unit step is the guess
    for s_flat, y_flat in memory:
        y_flat = y_flat.clone()
        penalized = slice(None) if penalize_intercept else slice(0, d * km1)
        y_flat[penalized] += (lam - lam_prev) * s_flat[penalized]
        s_x, y_x = pair_to_x(s_flat, y_flat)
        sy_val, yy_val = torch.stack([torch.dot(s_x, y_x), torch.dot(y_x, y_x)]).tolist()
        if sy_val > 0:
            S.append(s_x)
            Y.append(y_x)
            rho.append(torch.tensor(1.0 / sy_val, device=x.device))
            gamma = sy_val / yy_val
    n_iter = 0
    converged = gmax_val <= tol
    while not converged and n_iter < max_iter:
        # Two-loop recursion: direction = -H g with H the L-BFGS inverse-Hessian estimate.
        q = g.clone()
        alphas = []
        for s, yv, r in zip(reversed(S), reversed(Y), reversed(rho), strict=True):
            a = r * torch.dot(s, q)
            q -= a * yv
            alphas.append(a)
        q *= gamma
        for s, yv, r, a in zip(S, Y, rho, reversed(alphas), strict=True):
            q += s * (a - r * torch.dot(yv, q))
        direction = -q
        slope = float(torch.dot(g, direction))
        if slope >= 0:  # not a descent direction (numerical trouble): restart from -g
            S, Y, rho = [], [], []
            direction = -g
            slope = float(torch.dot(g, direction))
        # Backtracking line search (Armijo). The objective is strictly convex, so every
        # accepted step has s.y > 0 and the curvature pair can be kept without Wolfe checks.
        t = 1.0
        for _ in range(_MAX_BACKTRACK):
            x_new = x + t * direction
            f_new, g_new, gmax_new = evaluate(x_new)
            f_new_val, gmax_new_val = torch.stack([f_new, gmax_new]).tolist()
            if f_new_val <= f_val + _ARMIJO * t * slope:
                break
            # Minimum of the quadratic through f(0), f'(0) and f(t), kept in [0.1 t, 0.5 t].
            denom = 2.0 * (f_new_val - f_val - slope * t)
            t_quad = -slope * t * t / denom if denom > 0 else 0.5 * t
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        else:  # no decrease possible at float32 precision: as converged as it gets
            break
        n_iter += 1
        s_vec, y_vec = x_new - x, g_new - g
        sy_val, yy_val, ss_val = torch.stack(
            [torch.dot(s_vec, y_vec), torch.dot(y_vec, y_vec), torch.dot(s_vec, s_vec)]
        ).tolist()
        if sy_val > 1e-10 * math.sqrt(yy_val * ss_val):
            S.append(s_vec)
            Y.append(y_vec)
            rho.append(torch.tensor(1.0 / sy_val, device=x.device))
            gamma = sy_val / yy_val
            if len(S) > history:
                S.pop(0)
                Y.pop(0)
                rho.pop(0)
        decrease = f_val - f_new_val
        x, g, f_val, gmax_val = x_new, g_new, f_new_val, gmax_new_val
        # Like scipy's ``ftol``: a relative decrease below the resolution of a float32-accumulated
        # loss means no further progress is measurable, which counts as converged.
        converged = gmax_val <= tol or decrease <= _FTOL * max(abs(f_val), 1.0)
    W, c = from_x(x)
    return W, c, n_iter, converged, [pair_from_x(s_x, y_x) for s_x, y_x in zip(S, Y, strict=True)]


def _logits(X: torch.Tensor, coef: torch.Tensor, intercept: torch.Tensor, chunk: int):
    """Yield (start, logits) per chunk of rows; ``coef`` (d, k) acts on raw features."""
    for start in range(0, X.shape[0], chunk):
        yield start, torch.addmm(intercept, X[start : start + chunk], coef)


# ---------------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------------


@dataclass
class LogisticPathResult:
    """What :func:`fit_layerwise_logistic` learned; arrays are numpy, float32 unless noted."""

    coef: np.ndarray  # (n_layers, n_classes, n_features), at the chosen C
    intercept: np.ndarray  # (n_layers, n_classes)
    C: np.ndarray  # (n_layers,) float64
    Cs: np.ndarray  # (n_Cs,) float64, the grid as fitted (ascending)
    dev_scores: np.ndarray  # (n_layers, n_Cs) float64 dev accuracy; NaN without dev data
    n_iter: np.ndarray  # (n_layers, n_Cs) int, L-BFGS iterations; -1 where not fitted
    converged: np.ndarray  # (n_layers, n_Cs) bool
    mean: np.ndarray | None  # (n_layers, n_features), when standardising
    scale: np.ndarray | None  # (n_layers, n_features), when standardising
    # (n_layers, n_Cs) float64 mean dev log-loss in nats over dev items whose class the model
    # has; NaN without dev data
    dev_log_loss: np.ndarray | None = None


@dataclass
class _Problem:
    """Everything shared by the layers of one fit (labels, grid, device, options)."""

    y: torch.Tensor  # (n,) int64, indices into ``present``
    y_dev: torch.Tensor | None  # (n_dev,) int64 original class ids
    y_dev_index: torch.Tensor | None  # (n_dev,) int64 indices into ``present``, -1 if absent
    present: torch.Tensor  # (k,) int64 class ids seen in training
    Q: torch.Tensor  # (k-1, k) orthonormal basis of sum-zero class vectors
    lams: np.ndarray  # (n_Cs,) per-sample penalty for each C
    fit_mask: np.ndarray  # (n_Cs,) bool, which C are fitted
    standardize: bool
    tol: float
    max_iter: int
    history: int
    device: torch.device
    chunk: int
    penalize_intercept: bool = False
    select: str = "accuracy"  # dev criterion for C: "accuracy" (highest) or "log_loss" (lowest)
    stats: LayerStats | None = None  # statistics shared with other fits on the same X
    # Set when the caller is interrupted (Ctrl-C, SIGTERM): parallel layer fits stop at their next
    # loss evaluation instead of running the whole path before the interrupt can propagate.
    cancel: threading.Event = field(default_factory=threading.Event)


class _CancelledError(Exception):
    """A worker's fit stopped because :attr:`_Problem.cancel` was set."""


def _fit_layer(
    problem: _Problem,
    X,
    X_dev,
    li: int,
    out: LogisticPathResult,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Fit the regularisation path of layer ``li`` and write its row of ``out``.

    ``progress(1)`` is called after each value of C (from worker threads when layers run in
    parallel, so it must be thread-safe, as rich's and tqdm's counters are).
    """
    pb, dev = problem, problem.device
    Xl = _layer_tensor(X, li, dev)
    n, d = Xl.shape
    k = pb.Q.shape[1]

    def statistics() -> tuple[torch.Tensor, ...]:
        mean, std = _column_stats(Xl, pb.chunk)
        mean = mean.float()
        scale = torch.ones(d, dtype=torch.float32, device=dev)
        if pb.standardize:
            scale = torch.where(std > 0, std, torch.ones_like(std)).float()
        # Covariance of the penalised features on a strided subsample: a preconditioner only
        # needs to be roughly right, and the full Gram matrix would cost as much as ~6 passes.
        sub = (Xl[:: max(1, n // _PRECOND_ROWS)] - mean) * (1.0 / scale)
        eigval, eigvec = torch.linalg.eigh((sub.T @ sub).double() / sub.shape[0])
        return mean, scale, eigvec.float(), eigval.clamp_min(0).float()

    if pb.stats is None:
        mean, scale, eigvec, eigval = statistics()
    else:
        key = (li, pb.standardize, pb.chunk, str(dev))
        mean, scale, eigvec, eigval = pb.stats.get(key, statistics)
    inv_scale = torch.ones(d, dtype=torch.float32, device=dev)
    if pb.standardize:
        inv_scale = 1.0 / scale
        out.mean[li], out.scale[li] = mean.cpu().numpy(), scale.cpu().numpy()
    layer = _Layer(
        X=Xl,
        y=pb.y,
        mean=mean,
        inv_scale=inv_scale,
        eigvec=eigvec,
        eigval=eigval,
        Q=pb.Q,
        chunk=pb.chunk,
        cancel=pb.cancel,
    )
    Xd = _layer_tensor(X_dev, li, dev) if X_dev is not None else None
    W = torch.zeros((d, k - 1), dtype=torch.float32, device=dev)
    c = torch.zeros(k - 1, dtype=torch.float32, device=dev)
    fitted = np.flatnonzero(pb.fit_mask)
    solutions, correct, dev_loss = [], [], []
    memory, lam_prev = [], None
    for ci in fitted:
        lam = float(pb.lams[ci])
        W, c, n_it, ok, memory = _fit_one_c(
            layer,
            W,
            c,
            lam,
            tol=pb.tol,
            max_iter=pb.max_iter,
            history=pb.history,
            memory=memory,
            lam_prev=lam_prev,
            penalize_intercept=pb.penalize_intercept,
        )
        lam_prev = lam
        out.n_iter[li, ci], out.converged[li, ci] = n_it, ok
        # Back to scikit-learn's parametrisation: k class vectors on the (standardised) features.
        # The centring by ``mean`` was a reparametrisation; it goes into the raw intercept.
        W_full, b_full = (W @ pb.Q).T.contiguous(), c @ pb.Q  # (k, d), (k,)
        raw = inv_scale[:, None] * W_full.T  # (d, k), acts on raw features
        b_raw = b_full - mean @ raw
        solutions.append((W_full, b_full if pb.standardize else b_raw))
        if Xd is not None:
            hits = torch.zeros((), dtype=torch.int64, device=dev)
            nats = torch.zeros((), dtype=torch.float64, device=dev)
            for start, Z in _logits(Xd, raw, b_raw, pb.chunk):
                stop = start + Z.shape[0]
                pred = pb.present[Z.argmax(1)]
                hits += (pred == pb.y_dev[start:stop]).sum()
                # Log-loss over dev items of modelled classes (an unmodelled class would be an
                # infinite loss at every C and decide nothing).
                idx = pb.y_dev_index[start:stop]
                known = idx >= 0
                lse = torch.logsumexp(Z[known], 1)
                nats += (lse - Z[known].gather(1, idx[known, None])[:, 0]).sum().double()
            correct.append(hits)
            dev_loss.append(nats)
        if progress is not None:
            progress(1)
    best = 0
    if Xd is not None:
        out.dev_scores[li, fitted] = torch.stack(correct).cpu().numpy() / max(len(pb.y_dev), 1)
        n_known = max(int((pb.y_dev_index >= 0).sum()), 1)
        out.dev_log_loss[li, fitted] = torch.stack(dev_loss).cpu().numpy() / n_known
        if pb.select == "log_loss":
            best = int(np.argmin(out.dev_log_loss[li, fitted]))  # first min: strongest penalty
        else:
            best = int(np.argmax(out.dev_scores[li, fitted]))  # first max: strongest penalty
    out.C[li] = out.Cs[fitted[best]]
    present = pb.present.cpu().numpy()
    out.coef[li, present] = solutions[best][0].cpu().numpy()
    out.intercept[li, present] = solutions[best][1].cpu().numpy()


def fit_layerwise_logistic(
    X,
    y,
    X_dev=None,
    y_dev=None,
    *,
    Cs: Sequence[float] | float = DEFAULT_CS,
    n_classes: int | None = None,
    standardize: bool = False,
    tol: float = 1e-4,
    max_iter: int = 100,
    history: int = 10,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    n_jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    all_classes: bool = False,
    select: str = "accuracy",
    stats: LayerStats | None = None,
) -> LogisticPathResult:
    """Fit an L2 multinomial logistic regression per layer, choosing C per layer on dev.

    Parameters
    ----------
    X : array-like of shape (n_layers, n_samples, n_features)
        Training activations; numpy (float16 memmaps welcome), torch, or a list of 2-D layers.
    y : array-like of int of shape (n_samples,)
        Class ids in ``0..n_classes-1``.
    X_dev : array-like of shape (n_layers, n_dev, n_features), optional
    y_dev : array-like of int of shape (n_dev,), optional
        Dev split on which each layer's C is chosen (highest accuracy; ties go to the smaller C,
        the stronger penalty). Without it, only the middle of the grid is fitted (see below).
    Cs : float or sequence of float
        Grid of inverse L2 strengths, scikit-learn's ``C``. Fitted in ascending order, each
        warm-started from the previous solution. Without dev data and with more than one C, only
        the C nearest the grid's geometric middle is fitted (with a warning): choosing C needs
        held-out data, and the middle is the least extreme guess.
    n_classes : int, optional
        Number of classes; default ``max(y, y_dev) + 1``. Classes absent from ``y`` get zero
        coefficients and an intercept of ``-inf`` (their maximum-likelihood value).
    standardize : bool
        Scale features to zero mean and unit variance (statistics of the training split; columns
        with zero variance are left unscaled), so the penalty treats all features alike.
        ``coef`` then applies to standardised features, as in a scikit-learn pipeline.
    tol, max_iter : float, int
        Stop when the largest absolute gradient entry of ``mean log-loss + ||W||^2 / (2 C n)``
        is below ``tol`` (scikit-learn's ``gtol``), or after ``max_iter`` iterations per C.
    history : int
        Number of L-BFGS curvature pairs kept.
    device : str or torch.device, optional
        Default CUDA when available, else CPU. All arithmetic is float32; on GPU TF32 stays off,
        since the gradient near the optimum is a small difference of large terms and TF32's
        10-bit mantissa would stop L-BFGS short of ``tol`` (and a full fit takes seconds there).
    chunk_size : int, optional
        Rows per chunk (default 4096 on CPU, 2**20 on GPU).
    n_jobs : int, optional
        CPU only: layers fitted at the same time, each by its own Python thread running torch
        with one intra-op thread (torch's setting is restored afterwards). Default: torch's
        thread count. Layers are independent, so this parallelism needs no synchronisation,
        whereas intra-op threads meet at a barrier after every operation: on a busy 2-core
        machine that made one evaluation on a UPOS layer 10x slower than one thread. Problems
        with fewer than 2**21 values per layer use one thread (they are overhead-bound).
    progress : callable, optional
        Called as ``progress(1)`` each time one layer has been fitted at one C, so a progress
        bar can count to ``n_layers * n_fitted_Cs``; must be thread-safe.
    all_classes : bool
        Model all ``n_classes`` classes, also those absent from ``y``, instead of fixing absent
        classes at probability 0, and penalise the intercept (taken at the training mean of the
        features) like the weights: without that, an absent class's intercept runs to -inf,
        its maximum-likelihood value. This is MAP estimation under one isotropic Gaussian prior
        on all parameters; it is no longer scikit-learn's objective. Needed when the probe must
        give every class a finite code length, as in online coding (:mod:`probe.probes.mdl`),
        where early blocks miss rare classes.
    select : {"accuracy", "log_loss"}
        How each layer's C is chosen on dev: highest accuracy, or lowest mean log-loss (the
        criterion that matters when probabilities are used, e.g. as code lengths).
    stats : LayerStats, optional
        Statistics of ``X`` shared with other fits on the same array (e.g. a task and its control
        tasks): each layer's column statistics and preconditioner are computed once.

    Returns
    -------
    LogisticPathResult
    """
    n_layers, n, d = _shape3(X)
    y = _check_labels(y, n, "y")
    if stats is not None and stats.X is not X:
        raise ValueError("stats belong to another training array than X")
    if (X_dev is None) != (y_dev is None):
        raise ValueError("pass both X_dev and y_dev, or neither")
    have_dev = X_dev is not None
    if have_dev:
        dev_shape = _shape3(X_dev)
        if dev_shape[0] != n_layers or dev_shape[2] != d:
            raise ValueError(
                f"X_dev must have shape ({n_layers}, n_dev, {d}) like X, got {dev_shape}"
            )
        y_dev = _check_labels(y_dev, dev_shape[1], "y_dev")
    grid = np.sort(np.atleast_1d(np.asarray(Cs, dtype=np.float64)))
    if grid.size == 0 or not np.all(np.isfinite(grid)) or grid.min() <= 0:
        raise ValueError(f"Cs must be positive finite numbers, got {Cs!r}")
    fit_mask = np.ones(grid.size, dtype=bool)
    if not have_dev and grid.size > 1:
        middle = int(np.argmin(np.abs(np.log(grid) - np.log(grid).mean())))
        fit_mask[:] = False
        fit_mask[middle] = True
        warnings.warn(
            f"no dev split given: fitting only C={grid[middle]:g} (the middle of Cs); "
            "pass X_dev and y_dev to choose C per layer",
            UserWarning,
            stacklevel=3,
        )
    if n_classes is None:
        n_classes = int(max(y.max(), y_dev.max() if have_dev and y_dev.size else 0)) + 1
    if y.max() >= n_classes:
        raise ValueError(f"y has class id {y.max()} but n_classes={n_classes}")
    if select not in ("accuracy", "log_loss"):
        raise ValueError(f"select must be 'accuracy' or 'log_loss', got {select!r}")
    if all_classes:
        if n_classes < 2:
            raise ValueError(f"all_classes needs n_classes >= 2, got {n_classes}")
        present = np.arange(n_classes)
    else:
        present = np.unique(y)
        if present.size < 2:
            raise ValueError(f"y must contain at least two classes, got {present.tolist()}")
    k = present.size

    dev = resolve_device(device, mps=False)
    if dev.type == "cpu":
        jobs = n_jobs or torch.get_num_threads()
        workers = 1 if n * d < _SMALL else max(1, min(jobs, n_layers))
    else:
        workers = 1  # one GPU: layers run one after another, each fully using the device
    chunk = chunk_size or (_CPU_CHUNK if dev.type == "cpu" else _GPU_CHUNK)
    remap = np.full(n_classes, -1, dtype=np.int64)
    remap[present] = np.arange(k)
    # For two classes scikit-learn fits one weight vector w with the binary logistic loss and
    # penalty ||w||^2 / 2; the two-class softmax with W = [-w/2, w/2] gives the same
    # probabilities with penalty ||W||^2 / 2 = ||w||^2 / 4, so we double the penalty to get
    # sklearn's optimum (coef_[1] - coef_[0] is then sklearn's coef_[0]).
    lams = 1.0 / (grid * n) * (2.0 if k == 2 else 1.0)
    problem = _Problem(
        y=torch.from_numpy(remap[y]).to(dev),
        y_dev=torch.tensor(y_dev, device=dev) if have_dev else None,
        y_dev_index=(
            torch.from_numpy(
                np.where(y_dev < n_classes, remap[np.minimum(y_dev, n_classes - 1)], -1)
            ).to(dev)
            if have_dev
            else None
        ),
        present=torch.from_numpy(present).to(dev),
        Q=torch.from_numpy(helmert(k).astype(np.float32)).to(dev),  # rows sum to 0
        lams=lams,
        fit_mask=fit_mask,
        standardize=standardize,
        tol=tol,
        max_iter=max_iter,
        history=history,
        device=dev,
        chunk=chunk,
        penalize_intercept=all_classes,
        select=select,
        stats=stats,
    )
    out = LogisticPathResult(
        coef=np.zeros((n_layers, n_classes, d), dtype=np.float32),
        intercept=np.full((n_layers, n_classes), -np.inf, dtype=np.float32),
        C=np.zeros(n_layers),
        Cs=grid,
        dev_scores=np.full((n_layers, grid.size), np.nan),
        n_iter=np.full((n_layers, grid.size), -1, dtype=np.int64),
        converged=np.zeros((n_layers, grid.size), dtype=bool),
        mean=np.zeros((n_layers, d), dtype=np.float32) if standardize else None,
        scale=np.ones((n_layers, d), dtype=np.float32) if standardize else None,
        dev_log_loss=np.full((n_layers, grid.size), np.nan),
    )
    with _torch_threads(1 if dev.type == "cpu" else None):
        if workers == 1:
            for li in range(n_layers):
                _fit_layer(problem, X, X_dev, li, out, progress)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(_fit_layer, problem, X, X_dev, li, out, progress)
                    for li in range(n_layers)
                ]
                try:
                    for future in futures:
                        future.result()  # re-raises a worker's exception here
                except BaseException:
                    # The pool's exit waits for its workers: stop them first, or an interrupt
                    # would only take effect once every queued layer had been fitted.
                    problem.cancel.set()
                    for future in futures:
                        future.cancel()
                    raise

    bad = ~out.converged & (out.n_iter >= 0)
    if bad.any():
        where = ", ".join(
            f"layer {li} C={grid[ci]:g}" for li, ci in zip(*np.nonzero(bad), strict=True)
        )
        warnings.warn(
            f"L-BFGS did not reach tol={tol:g} within max_iter={max_iter} at {where}; "
            "raise max_iter or tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return out


# ---------------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------------


class LayerwiseLogisticRegression(BaseEstimator):
    """One multinomial logistic-regression probe per layer, L2 strength chosen per layer on dev.

    Same objective as scikit-learn's ``LogisticRegression(C=C)`` (lbfgs, multinomial), fitted
    for all layers and a whole grid of C in one call; see :func:`fit_layerwise_logistic` for
    the parameters and the module docstring for why it is fast.

    Parameters
    ----------
    Cs : float or sequence of float, default DEFAULT_CS
        Grid of inverse L2 strengths (scikit-learn's ``C``).
    n_classes : int, optional
        Default ``max(y, y_dev) + 1``.
    standardize : bool, default False
        Standardise features with training mean and std (``mean_``, ``scale_``); ``coef_`` then
        acts on standardised features.
    tol : float, default 1e-4
    max_iter : int, default 100
        L-BFGS iterations per layer and C.
    history : int, default 10
    device : str or torch.device, optional
        Default CUDA when available, else CPU.
    chunk_size : int, optional
    n_jobs : int, optional
        CPU: layers fitted in parallel threads (default: torch's thread count).

    Attributes
    ----------
    coef_ : ndarray of shape (n_layers, n_classes, n_features)
    intercept_ : ndarray of shape (n_layers, n_classes)
    C_ : ndarray of shape (n_layers,)
        The C chosen for each layer.
    Cs_ : ndarray of shape (n_Cs,)
        The grid, ascending; columns of ``dev_scores_`` and ``n_iter_`` follow it.
    dev_scores_ : ndarray of shape (n_layers, n_Cs)
        Dev accuracy of each layer at each C (NaN where not fitted, e.g. without dev data).
    n_iter_ : ndarray of shape (n_layers, n_Cs)
        L-BFGS iterations (-1 where not fitted).
    classes_ : ndarray of shape (n_classes,)
        ``arange(n_classes)``.
    mean_, scale_ : ndarray of shape (n_layers, n_features) or None
        Standardisation statistics (None unless ``standardize``).
    n_layers_, n_features_in_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 300)
    >>> signal = np.eye(3)[y] * 3 + rng.normal(size=(300, 3))
    >>> X = np.stack([rng.normal(size=(300, 3)), signal]).astype(np.float32)  # layer 1 knows
    >>> probe = LayerwiseLogisticRegression(device="cpu").fit(X[:, :200], y[:200],
    ...                                                      X[:, 200:], y[200:])
    >>> acc = probe.score(X[:, 200:], y[200:])
    >>> bool(acc[1] > 0.8 > acc[0])
    True
    """

    def __init__(
        self,
        Cs: Sequence[float] | float = DEFAULT_CS,
        *,
        n_classes: int | None = None,
        standardize: bool = False,
        tol: float = 1e-4,
        max_iter: int = 100,
        history: int = 10,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        n_jobs: int | None = None,
    ):
        self.Cs = Cs
        self.n_classes = n_classes
        self.standardize = standardize
        self.tol = tol
        self.max_iter = max_iter
        self.history = history
        self.device = device
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs

    def fit(
        self,
        X,
        y,
        X_dev=None,
        y_dev=None,
        *,
        progress: Callable[[int], None] | None = None,
        stats: LayerStats | None = None,
    ) -> LayerwiseLogisticRegression:
        """Fit every layer; choose each layer's C on ``(X_dev, y_dev)``.

        Parameters
        ----------
        X : array-like of shape (n_layers, n_samples, n_features)
            May be a float16 memmap; it is converted to float32 one layer and chunk at a time.
        y : array-like of int of shape (n_samples,)
        X_dev : array-like of shape (n_layers, n_dev, n_features), optional
        y_dev : array-like of int of shape (n_dev,), optional
        progress : callable, optional
            ``progress(1)`` after each layer and C is fitted (thread-safe; for progress bars).
        stats : LayerStats, optional
            Statistics of ``X`` shared with other fits on it (see :class:`LayerStats`).

        Returns
        -------
        self
        """
        result = fit_layerwise_logistic(
            X,
            y,
            X_dev,
            y_dev,
            Cs=self.Cs,
            n_classes=self.n_classes,
            standardize=self.standardize,
            tol=self.tol,
            max_iter=self.max_iter,
            history=self.history,
            device=self.device,
            chunk_size=self.chunk_size,
            n_jobs=self.n_jobs,
            progress=progress,
            stats=stats,
        )
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.C_ = result.C
        self.Cs_ = result.Cs
        self.dev_scores_ = result.dev_scores
        self.n_iter_ = result.n_iter
        self.mean_ = result.mean
        self.scale_ = result.scale
        self.n_layers_, n_classes, self.n_features_in_ = result.coef.shape
        self.classes_ = np.arange(n_classes)
        return self

    def _layer_logits(self, X):
        """Yield ``(layer, start, logits)`` with logits a float32 tensor of shape (b, n_classes)."""
        check_is_fitted(self, "coef_")
        n_layers, _, d = _shape3(X)
        if (n_layers, d) != (self.n_layers_, self.n_features_in_):
            raise ValueError(
                f"X must have shape ({self.n_layers_}, n_samples, {self.n_features_in_}), "
                f"got {(n_layers, _, d)}"
            )
        dev = resolve_device(self.device, mps=False)
        chunk = self.chunk_size or (_CPU_CHUNK if dev.type == "cpu" else _GPU_CHUNK)
        for li in range(n_layers):
            coef = torch.from_numpy(self.coef_[li].T.copy()).to(dev)  # (d, k)
            intercept = torch.from_numpy(self.intercept_[li].copy()).to(dev)
            if self.mean_ is not None:
                # Fold standardisation into the weights instead of copying X.
                coef = coef / torch.from_numpy(self.scale_[li][:, None]).to(dev)
                intercept = intercept - torch.from_numpy(self.mean_[li]).to(dev) @ coef
            Xl = _layer_tensor(X, li, dev)
            for start, Z in _logits(Xl, coef, intercept, chunk):
                yield li, start, Z

    def decision_function(self, X) -> np.ndarray:
        """Logits, float32 of shape (n_layers, n_samples, n_classes)."""
        check_is_fitted(self, "coef_")
        n_layers, n, _ = _shape3(X)
        out = np.empty((n_layers, n, len(self.classes_)), dtype=np.float32)
        for li, start, Z in self._layer_logits(X):
            out[li, start : start + Z.shape[0]] = Z.cpu().numpy()
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, float32 of shape (n_layers, n_samples, n_classes)."""
        check_is_fitted(self, "coef_")
        n_layers, n, _ = _shape3(X)
        out = np.empty((n_layers, n, len(self.classes_)), dtype=np.float32)
        for li, start, Z in self._layer_logits(X):
            out[li, start : start + Z.shape[0]] = Z.softmax(1).cpu().numpy()
        return out

    def predict(self, X) -> np.ndarray:
        """Predicted class ids, int64 of shape (n_layers, n_samples)."""
        check_is_fitted(self, "coef_")
        n_layers, n, _ = _shape3(X)
        out = np.empty((n_layers, n), dtype=np.int64)
        for li, start, Z in self._layer_logits(X):
            out[li, start : start + Z.shape[0]] = Z.argmax(1).cpu().numpy()
        return out

    def score(self, X, y) -> np.ndarray:
        """Accuracy of each layer's probe, float64 of shape (n_layers,)."""
        check_is_fitted(self, "coef_")
        _, n, _ = _shape3(X)
        y = _check_labels(y, n, "y")
        return (self.predict(X) == y[None, :]).mean(axis=1)
