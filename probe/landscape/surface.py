"""Evaluate an objective at points ``theta + sum_k c_k d_k`` without ever copying the model.

The model's own parameters are moved in place to each point and restored when done: the
original tensors are stored once and *copied back* (never ``theta + c d - c d``, which drifts by
rounding), so the caller's weights are bit-identical afterwards, even if an evaluation raises.
Each point is written as ``p = theta; p += c_1 d_1; p += c_2 d_2`` from the stored original, so
errors never accumulate across the grid, and a point whose coefficients are all zero *is* the
unperturbed model.

This is also where ``loss_landscapes`` 3.0.6 goes wrong: ``random_plane`` and
``planar_interpolation`` walk the grid by repeated in-place ``add_``/``sub_`` (rounding drift),
leave the model at the last grid point unless ``deepcopy_model=True`` (which copies the whole
model), and evaluate a staggered grid: even columns at offsets ``1..steps`` along the second
direction, odd columns at ``0..steps-1``.

Grids can be split across processes (``accelerate launch``): each process evaluates every
``num_processes``-th point and :func:`evaluate_points_distributed` gathers the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from probe.landscape.directions import Direction
from probe.landscape.objective import Objective

__all__ = [
    "Perturbation",
    "centered_grid",
    "evaluate_points",
    "evaluate_points_distributed",
    "line_alphas",
    "perturbed",
    "plane_points",
    "span_grid",
]


def centered_grid(span: float, points: int) -> np.ndarray:
    """``points`` evenly spaced values on [-span, span] whose middle value is exactly 0.

    ``np.linspace(-1, 1, 11)[5]`` is ``1.1e-16``, not 0; building the grid from integer offsets
    keeps the centre exact, so the centre of a plane is the unperturbed model.

    >>> centered_grid(1.0, 5).tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    if points < 1 or points % 2 == 0:
        raise ValueError(f"a centred grid needs an odd number of points, got {points}")
    half = (points - 1) // 2
    if half == 0:
        return np.zeros(1)
    return np.arange(-half, half + 1, dtype=np.float64) * (span / half)


def span_grid(low: float, high: float, points: int) -> np.ndarray:
    """``points`` evenly spaced values on [low, high]; values within 1e-12 of 0 or 1 snap to them.

    Snapping keeps ``alpha = 0`` and ``alpha = 1`` (the start and end checkpoints) exact.

    >>> span_grid(-0.5, 1.5, 5).tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
    """
    values = np.linspace(low, high, points)
    for anchor in (0.0, 1.0):
        values[np.abs(values - anchor) < 1e-12] = anchor
    return values


def line_alphas(low: float, high: float, points: int) -> np.ndarray:
    """Alphas of the 1-D interpolation (alias of :func:`span_grid`)."""
    return span_grid(low, high, points)


def plane_points(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """All ``(x, y)`` pairs of a grid, x-major; shape (len(xs) * len(ys), 2)."""
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


class Perturbation:
    """Moves a model's parameters to ``theta + sum_k c_k d_k``; see :func:`perturbed`.

    Only parameters named by at least one direction are touched (the others keep their exact
    values), so ignored biases and LayerNorm parameters cost nothing. A point costs one pass
    over the perturbed parameters: ``theta + sum_{k<K} c_k d_k`` (all but the last direction)
    is kept in a buffer while those coefficients stay the same (a grid row), and each point is
    written as ``p = buffer + c_K d_K`` straight into the parameter (``torch.add(out=)``).
    """

    def __init__(self, model: torch.nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]):
        named = dict(model.named_parameters())
        unknown = [n for d in directions for n in d if n not in named]
        if unknown:
            raise KeyError(f"directions name parameters the model lacks: {unknown[:5]}")
        order = list(named)
        names = sorted({n for d in directions for n in d}, key=order.index)
        self.params = [named[n] for n in names]
        # Writable views: out= and in-place kernels must not see a leaf that requires grad.
        self._views = [p.detach() for p in self.params]
        # One stored copy of the original values: restoring copies it back bit for bit.
        self.originals = [p.detach().clone() for p in self.params]
        # Per direction, one tensor per perturbed parameter, or None where it is left alone.
        self._directions = [
            [d[n].to(device=p.device, dtype=p.dtype) if n in d else None
             for n, p in zip(names, self.params, strict=True)]
            for d in directions
        ]  # fmt: skip
        self._buffer: list[torch.Tensor] | None = None
        self._buffer_key: tuple[float, ...] | None = None

    def _base(self, leading: tuple[float, ...]) -> list[torch.Tensor]:
        """``theta + sum_k leading[k] d_k``, recomputed only when ``leading`` changes."""
        if not any(leading):
            return self.originals
        if self._buffer_key != leading:
            if self._buffer is None:
                self._buffer = [torch.empty_like(o) for o in self.originals]
            for i, (buffer, original) in enumerate(zip(self._buffer, self.originals, strict=True)):
                buffer.copy_(original)
                for c, direction in zip(leading, self._directions, strict=False):
                    if c != 0.0 and direction[i] is not None:
                        buffer.add_(direction[i], alpha=c)
            self._buffer_key = leading
        return self._buffer

    @torch.no_grad()
    def move_to(self, coefficients: Sequence[float]) -> None:
        """Set the parameters to ``theta + sum_k coefficients[k] * d_k``.

        Always computed from the stored originals (never from the previous point), adding the
        directions in order, so a point does not depend on the path the grid took.
        """
        if len(coefficients) != len(self._directions):
            raise ValueError(
                f"{len(coefficients)} coefficients for {len(self._directions)} directions"
            )
        if not self._directions:
            return
        *leading, last = (float(c) for c in coefficients)
        base = self._base(tuple(leading))
        for view, b, d in zip(self._views, base, self._directions[-1], strict=True):
            if d is None or last == 0.0:
                view.copy_(b)
            else:
                torch.add(b, d, alpha=last, out=view)

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the stored originals back (bit-identical)."""
        if self.params:  # the foreach kernels reject empty lists
            torch._foreach_copy_(self._views, self.originals)


@contextmanager
def perturbed(
    model: torch.nn.Module, directions: Sequence[Mapping[str, torch.Tensor]]
) -> Iterator[Perturbation]:
    """Context in which ``model`` can be moved along ``directions``; restored exactly on exit.

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> before = model.weight.clone()
    >>> with perturbed(model, [{"weight": torch.ones(1, 2)}]) as move:
    ...     move.move_to([0.5])
    ...     bool(torch.equal(model.weight, before + 0.5))
    True
    >>> torch.equal(model.weight, before)
    True
    """
    perturbation = Perturbation(model, directions)
    try:
        yield perturbation
    finally:
        perturbation.restore()


def evaluate_points(
    model: torch.nn.Module,
    directions: Sequence[Direction],
    coords: np.ndarray,
    objectives: Mapping[str, Objective],
    *,
    on_point: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Mean loss and accuracy of each objective at ``theta + coords[i] @ directions``.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in its current mode (call ``model.eval()`` first); its parameters are
        bit-identical afterwards.
    directions : list of Direction
        k directions.
    coords : ndarray of shape (n_points, k)
    objectives : mapping of str to Objective
        E.g. ``{"train": ..., "dev": ...}``.
    on_point : callable, optional
        Called with the number of points done (progress bars); never forces a host sync.

    Returns
    -------
    ndarray of shape (n_points, n_objectives, 2)
        ``[..., 0]`` mean loss, ``[..., 1]`` accuracy, objectives in mapping order.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), -1)
    if coords.shape[1] != len(directions):
        raise ValueError(f"coords have {coords.shape[1]} columns for {len(directions)} directions")
    if len(coords) == 0:
        return np.zeros((0, len(objectives), 2))
    totals: list[torch.Tensor] = []
    with perturbed(model, directions) as move:
        for i, point in enumerate(coords):
            move.move_to(point.tolist())
            # Device tensors only: the whole grid is queued before anything is read back.
            totals.append(torch.stack([obj.totals(model) for obj in objectives.values()]))
            if on_point is not None:
                on_point(i + 1)
    stacked = torch.stack(totals).double().cpu().numpy()  # the one host sync of the grid
    counts = np.array([obj.n_examples for obj in objectives.values()], dtype=np.float64)
    return stacked / counts[None, :, None]


def evaluate_points_distributed(
    model: torch.nn.Module,
    directions: Sequence[Direction],
    coords: np.ndarray,
    objectives: Mapping[str, Objective],
    *,
    process_index: int = 0,
    num_processes: int = 1,
    gather: Callable[[list], list] | None = None,
    on_point: Callable[[int], None] | None = None,
) -> np.ndarray:
    """:func:`evaluate_points` with the points dealt round-robin across processes.

    Process ``r`` evaluates points ``r, r + n, r + 2n, ...``; ``gather`` (e.g.
    ``accelerate.utils.gather_object``) collects every process's ``(index, values)`` pairs, and
    every process returns the full array of shape (n_points, n_objectives, 2).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), -1)
    if num_processes == 1:
        return evaluate_points(model, directions, coords, objectives, on_point=on_point)
    if gather is None:
        raise ValueError("several processes need a gather function (accelerate's gather_object)")
    mine = np.arange(process_index, len(coords), num_processes)
    values = evaluate_points(model, directions, coords[mine], objectives, on_point=on_point)
    pairs = gather([(int(i), v) for i, v in zip(mine, values, strict=True)])
    out = np.full((len(coords), len(objectives), 2), np.nan)
    seen = np.zeros(len(coords), dtype=bool)
    for i, v in pairs:
        out[i] = v
        seen[i] = True
    if not seen.all():
        raise RuntimeError(f"{int((~seen).sum())} grid points were evaluated by no process")
    return out
