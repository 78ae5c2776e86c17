"""The plane of a training trajectory: PCA of the saved checkpoints around the final weights.

Li et al. (2018, section 7; ``projection.py::setup_PCA_directions`` in their code) form the
matrix whose rows are ``theta_i - theta_final`` over the saved checkpoints, fit a 2-component
PCA (centred, as ``sklearn.decomposition.PCA`` does), use the two unit-norm components as plot
directions and project each ``theta_i - theta_final`` onto them to draw the path. Biases and
LayerNorm parameters can be left out (``ignore="biasbn"``), as for random directions.

A checkpoint matrix of MiniLM is n x 22.7M, so the components come from the small n x n Gram
matrix instead of an SVD of the big one: with centred rows ``X``, ``X X^T = V L V^T`` gives the
components ``X^T v_k / sqrt(l_k)``. It is accumulated over column chunks in float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probe.landscape.directions import Direction, Ignore

__all__ = ["TrajectoryPlane", "trajectory_plane"]

_CHUNK = 1 << 20  # parameters per column chunk of the checkpoint matrix


@dataclass(frozen=True)
class TrajectoryPlane:
    """Two PCA directions of a trajectory and the trajectory's coordinates in their plane.

    Attributes
    ----------
    directions : the two unit-norm components (:data:`Direction` dicts).
    coords : ndarray of shape (n_points, 2), ``(theta_i - theta_final) . d_k``.
    explained_variance_ratio : ndarray of shape (2,).
    """

    directions: tuple[Direction, Direction]
    coords: np.ndarray
    explained_variance_ratio: np.ndarray


def trajectory_plane(
    points: Sequence[Mapping[str, torch.Tensor]],
    origin: Mapping[str, torch.Tensor],
    *,
    ignore: Ignore = "biasbn",
) -> TrajectoryPlane:
    """PCA plane of ``points`` (checkpoint parameters) around ``origin`` (the final weights).

    Parameters
    ----------
    points : list of mapping of str to Tensor
        Parameters of each checkpoint, in training order (at least 3 distinct points).
    origin : mapping of str to Tensor
        The final weights; the plane passes through them.
    ignore : {"biasbn", None}
        ``"biasbn"`` leaves 1-D parameters out of the directions (zero components there).

    Returns
    -------
    TrajectoryPlane
        Signs are fixed so the first point (the start of training) has coordinates <= 0.
    """
    if len(points) < 3:
        raise ValueError(f"a trajectory plane needs at least 3 checkpoints, got {len(points)}")
    names = [n for n, w in origin.items() if not (ignore == "biasbn" and w.dim() <= 1)]
    n = len(points)

    gram = torch.zeros(n, n, dtype=torch.float64)
    for _, _, diffs in _chunks(points, origin, names):
        centred = diffs - diffs.mean(dim=0, keepdim=True)  # centred PCA, as sklearn / Li et al.
        gram += centred @ centred.T
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    eigenvalues = eigenvalues.flip(0).clamp_min(0)
    eigenvectors = eigenvectors.flip(1)
    if eigenvalues[1] <= 1e-12 * max(float(eigenvalues[0]), 1e-300):
        raise ValueError("the checkpoints span fewer than 2 dimensions; save more checkpoints")
    ratio = (eigenvalues[:2] / eigenvalues.sum()).numpy()
    weights = eigenvectors[:, :2] / eigenvalues[:2].sqrt()  # (n, 2); component k = X^T w_k

    pieces: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    projections = torch.zeros(n, 2, dtype=torch.float64)
    norms_sq = torch.zeros(2, dtype=torch.float64)
    for name, _, diffs in _chunks(points, origin, names):
        component = weights.T @ (diffs - diffs.mean(dim=0, keepdim=True))  # (2, chunk)
        pieces[name].append(component)
        projections += diffs @ component.T
        norms_sq += (component * component).sum(dim=1)
    # Unit-normalise in float64 (the Gram route is exact only up to rounding); fix the signs so
    # the start of training lies at coordinates <= 0.
    norms = norms_sq.sqrt()
    coords = projections / norms
    signs = torch.where(coords[0] > 0, -1.0, 1.0).to(torch.float64)
    coords = (coords * signs).numpy()
    scale = signs / norms
    directions = tuple(
        {
            name: (torch.cat(pieces[name], dim=1)[k] * scale[k])
            .reshape(origin[name].shape)
            .to(origin[name])
            for name in names
        }
        for k in range(2)
    )
    return TrajectoryPlane(
        directions=directions,
        coords=coords,  # type: ignore[arg-type]
        explained_variance_ratio=ratio,
    )


def _chunks(
    points: Sequence[Mapping[str, torch.Tensor]],
    origin: Mapping[str, torch.Tensor],
    names: Sequence[str],
) -> Iterator[tuple[str, int, torch.Tensor]]:
    """``(name, offset, theta_i - origin)`` over column chunks of every parameter.

    Yields float64 CPU tensors of shape (n_points, <= _CHUNK): memory stays at n x _CHUNK
    however large the embedding table is.
    """
    for name in names:
        ref = origin[name].detach().reshape(-1)
        for start in range(0, ref.numel(), _CHUNK):
            stop = min(start + _CHUNK, ref.numel())
            base = ref[start:stop].double().cpu()
            diffs = torch.stack(
                [p[name].detach().reshape(-1)[start:stop].double().cpu() for p in points]
            )
            yield name, start, diffs - base
