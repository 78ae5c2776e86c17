"""Sharpness of a minimum, two ways: the top Hessian eigenvalue and the loss rise at a radius.

``hessian_top_eigenvalue``
    Power iteration with exact Hessian-vector products (Pearlmutter's trick through
    ``torch.autograd``: the gradient of ``g(theta) . v``). The Hessian is never formed; one
    iteration costs about two backward passes per batch. Power iteration converges to the
    eigenvalue of largest *magnitude*; when that one is negative, a second, shifted pass finds
    the largest eigenvalue.
``loss_increase_at_radius``
    The loss at ``theta +/- r d`` minus the loss at ``theta``, averaged over several
    filter-normalised Gaussian directions ``d`` (Li et al. 2018; Keskar et al. 2017 use a
    similar "epsilon-sharpness"). Using both signs cancels the first-order (gradient) term, so
    what is left is curvature along directions scaled to each filter's norm, which is what makes
    pretrained and from-scratch weights comparable despite their different scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from probe.landscape.directions import Ignore, random_direction
from probe.landscape.objective import Objective
from probe.landscape.surface import evaluate_points

__all__ = [
    "HessianEigen",
    "direction_seed",
    "hessian_top_eigenvalue",
    "hessian_vector_product",
    "loss_increase_at_radius",
]


@dataclass(frozen=True)
class HessianEigen:
    """Result of :func:`hessian_top_eigenvalue`.

    Attributes
    ----------
    value : the largest (most positive) eigenvalue found.
    iterations : power iterations done in all.
    converged : whether every power iteration met its tolerance.
    dominant : the largest-magnitude eigenvalue (the first power iteration's answer); when it is
        negative it is the most negative eigenvalue, a sign the point is not a minimum.
    """

    value: float
    iterations: int
    converged: bool
    dominant: float


def _trainable(model: torch.nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def hessian_vector_product(
    model: torch.nn.Module, objective: Objective, vector: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``H v`` of the objective's mean loss w.r.t. the trainable parameters, summed over batches.

    ``vector`` has one tensor per trainable parameter (``named_parameters`` order).
    """
    _, params = _trainable(model)
    out = [torch.zeros_like(p) for p in params]
    # Double backward needs the math SDPA kernel: the fused (flash / memory-efficient)
    # attention kernels have no second derivative.
    with sdpa_kernel([SDPBackend.MATH]):
        for loss in objective.batch_losses(model):
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = torch.stack([(g * v).sum() for g, v in zip(grads, vector, strict=True)]).sum()
            hv = torch.autograd.grad(dot, params)
            torch._foreach_add_(out, list(hv))
    return out


def _power_iteration(
    apply: Callable[[list[torch.Tensor]], list[torch.Tensor]],
    start: list[torch.Tensor],
    iterations: int,
    tolerance: float,
) -> tuple[float, int, bool]:
    """Dominant eigenvalue of the symmetric operator ``apply``: (value, iterations, converged)."""

    def norm(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))

    v = list(torch._foreach_div(start, norm(start)))
    value, previous = math.nan, math.nan
    for step in range(1, iterations + 1):
        av = apply(v)
        # Rayleigh quotient with the unit vector v; one host sync per iteration, not per batch.
        value = float(torch.stack([(a * b).sum() for a, b in zip(v, av, strict=True)]).sum())
        av_norm = norm(av)
        if float(av_norm) == 0.0:
            return 0.0, step, True
        v = list(torch._foreach_div(av, av_norm))
        if step > 1 and abs(value - previous) <= tolerance * abs(value):
            return value, step, True
        previous = value
    return value, iterations, False


def hessian_top_eigenvalue(
    model: torch.nn.Module,
    objective: Objective,
    *,
    iterations: int = 20,
    tolerance: float = 1e-3,
    seed: int = 0,
) -> HessianEigen:
    """Largest Hessian eigenvalue of the objective by power iteration on ``H v`` products.

    Power iteration finds the eigenvalue of largest magnitude, ``mu``. If ``mu`` is negative
    (a saddle or a point still descending), the largest eigenvalue is found by a second power
    iteration on the shifted operator ``H - mu I``, whose eigenvalues are all >= 0 and whose
    dominant one is ``lambda_max - mu``.

    Parameters
    ----------
    model : torch.nn.Module
        Put in eval mode by the caller (dropout makes the loss random); its parameters are
        not modified.
    objective : Objective
    iterations : int
        Maximum number of power iterations per pass (each one a Hessian-vector product).
    tolerance : float
        Stop when ``|lambda_t - lambda_{t-1}| <= tolerance * |lambda_t|``.
    seed : int
        Seeds the Gaussian start vector (drawn on the CPU: the same on every device).
    """
    _, params = _trainable(model)
    generator = torch.Generator().manual_seed(seed)
    start = [torch.randn(p.shape, generator=generator).to(p) for p in params]

    def hessian(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return hessian_vector_product(model, objective, v)

    mu, steps, converged = _power_iteration(hessian, start, iterations, tolerance)
    if mu >= 0:
        return HessianEigen(mu, steps, converged, dominant=mu)

    def shifted(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(torch._foreach_add(hessian(v), v, alpha=-mu))

    top, more, converged_shifted = _power_iteration(shifted, start, iterations, tolerance)
    return HessianEigen(top + mu, steps + more, converged and converged_shifted, dominant=mu)


def direction_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th sharpness direction: independent streams, shardable by index."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def loss_increase_at_radius(
    model: torch.nn.Module,
    objectives: Mapping[str, Objective],
    radii: Sequence[float],
    *,
    n_directions: int = 8,
    seed: int = 0,
    ignore: Ignore = "biasbn",
    base: np.ndarray | None = None,
    process_index: int = 0,
    num_processes: int = 1,
    gather: Callable[[list], list] | None = None,
) -> dict[str, dict[float, np.ndarray]]:
    """Loss at ``theta +/- r d_i`` minus loss at ``theta`` for filter-normalised ``d_i``.

    Directions are drawn and evaluated one at a time (memory: one direction), each from its own
    seed (:func:`direction_seed`), so with several processes each takes every
    ``num_processes``-th direction and ``gather`` collects the results.

    Parameters
    ----------
    model, objectives
        As in :func:`~probe.landscape.surface.evaluate_points`.
    radii : list of float
        Radii in filter-normalised units (``r = 0.1``: every filter moves by 10% of its norm).
    n_directions : int
        Random directions; each is evaluated at ``+r`` and ``-r``.
    seed, ignore
        Seed of the directions; ``ignore`` as in
        :func:`~probe.landscape.directions.filter_normalize`.
    base : ndarray of shape (n_objectives, 2), optional
        Loss/accuracy at ``theta`` if already known (e.g. the centre of a grid).

    Returns
    -------
    dict
        ``{objective: {radius: increases}}``, ``increases`` of shape (n_directions, 2): the
        loss increase at ``+r`` and at ``-r`` along each direction.
    """
    weights = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if base is None:
        base = evaluate_points(model, [], np.zeros((1, 0)), objectives)[0]
    coords = np.array([[sign * r] for r in radii for sign in (1.0, -1.0)])
    mine = []
    for i in range(process_index, n_directions, num_processes):
        generator = torch.Generator().manual_seed(direction_seed(seed, i))
        direction = random_direction(weights, generator, ignore=ignore)
        mine.append((i, evaluate_points(model, [direction], coords, objectives)))
        del direction
    if num_processes > 1:
        if gather is None:
            raise ValueError(
                "several processes need a gather function (accelerate's gather_object)"
            )
        mine = gather(mine)
    values = np.stack([v for _, v in sorted(mine, key=lambda item: item[0])])
    # values: (n_directions, len(radii) * 2, n_objectives, 2)
    rise = values[..., 0] - np.asarray(base)[None, None, :, 0]
    rise = rise.reshape(n_directions, len(radii), 2, len(objectives))
    return {
        name: {float(r): rise[:, k, :, j] for k, r in enumerate(radii)}
        for j, name in enumerate(objectives)
    }
