"""Directions in parameter space: random filter-normalised, model-to-model, and their files.

A direction is a ``dict[str, Tensor]`` keyed by parameter name (``model.named_parameters()``),
each tensor shaped like its parameter. Parameters a direction leaves alone are simply absent, so
a perturbation loop never touches them.

Filter normalisation follows Li et al. (2018) and their reference code (``net_plotter.py`` in
tomgoldstein/loss-landscape, ``normalize_directions_for_weights``):

- every parameter with two or more dimensions is split into *filters* along dim 0 (a row of a
  ``Linear`` weight = the weights into one output unit; a row of an embedding table = one
  token's vector), and each filter of the Gaussian direction is rescaled to the norm of the
  matching filter of the weights;
- one-dimensional parameters (biases and LayerNorm gains/biases) are either left unperturbed
  (``ignore="biasbn"``, their direction is zero) or get the weights themselves as direction
  (``ignore=None``: ``d.copy_(w)``).

``loss_landscapes`` 3.0.6 gets this wrong in three ways (why this module exists): it draws
directions uniform on [0, 1) instead of Gaussian (every entry positive, so "random" directions
all lean towards the all-ones vector); for 1-D parameters it sets each entry to ``|w_i|`` with the
direction's sign instead of either convention above; and it divides by each entry of a 1-D
direction, raising ``ZeroDivisionError`` when a bias is exactly zero (MiniLM's pooler bias and
any freshly initialised classifier bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "Direction",
    "Ignore",
    "difference",
    "filter_normalize",
    "load_directions",
    "model_parameters",
    "random_direction",
    "random_directions",
    "save_directions",
]

Direction = dict[str, torch.Tensor]
Ignore = Literal["biasbn"] | None


def model_parameters(
    model: torch.nn.Module, *, device: str | torch.device | None = None, copy: bool = True
) -> Direction:
    """The trainable parameters by name: detached copies (on ``device``), or views (``copy=False``).

    Views share storage with the model: read them only while no perturbation is active.
    """
    return {
        name: p.detach().to(device=device, copy=True) if copy else p.detach()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def filter_normalize(
    direction: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor],
    *,
    ignore: Ignore = "biasbn",
) -> Direction:
    """Rescale each filter (row along dim 0) of ``direction`` to the norm of the weights' row.

    Parameters
    ----------
    direction : mapping of str to Tensor
        Raw direction, e.g. Gaussian; same names and shapes as ``weights``.
    weights : mapping of str to Tensor
        The point the direction starts from.
    ignore : {"biasbn", None}
        ``"biasbn"`` drops 1-D parameters (biases, LayerNorm) from the direction, i.e. leaves
        them unperturbed; ``None`` uses the weights themselves as their direction (Li et al.).

    Returns
    -------
    dict of str to Tensor
        New tensors; for every 2-D+ parameter, row ``i`` of the result has the norm of row ``i``
        of the weights (a zero weight row gives a zero direction row).
    """
    out: Direction = {}
    for name, d in direction.items():
        w = weights[name]
        if d.shape != w.shape:
            raise ValueError(f"{name}: direction shape {tuple(d.shape)} != weight {tuple(w.shape)}")
        if d.dim() <= 1:
            if ignore != "biasbn":
                out[name] = w.detach().to(dtype=d.dtype, copy=True)
            continue
        rows_d = d.reshape(d.shape[0], -1)
        # Row norms in float64 (cheap: one value per row) so the rescaled rows match the weight
        # norms to float32 rounding; the rows themselves are scaled in their own dtype.
        norm_w = w.detach().reshape(w.shape[0], -1).double().norm(dim=1)
        norm_d = rows_d.double().norm(dim=1)
        # Li et al. add 1e-10 to the denominator; a Gaussian row is never exactly zero, so only
        # guard the impossible case instead of biasing every row.
        scale = torch.where(norm_d > 0, norm_w / norm_d, torch.zeros_like(norm_w))
        out[name] = (rows_d * scale[:, None].to(d.dtype)).reshape(d.shape)
    return out


def random_direction(
    weights: Mapping[str, torch.Tensor], generator: torch.Generator, *, ignore: Ignore = "biasbn"
) -> Direction:
    """A Gaussian direction, filter-normalised to ``weights`` (Li et al. 2018).

    Entries are drawn on the CPU from ``generator`` in parameter order, for every parameter (even
    ignored ones, so the 2-D part of a direction does not depend on ``ignore``), then moved to
    each weight's device: a seed gives the same direction on every device.
    """
    raw = {
        name: torch.randn(w.shape, generator=generator, dtype=torch.float32)
        for name, w in weights.items()
    }
    normalized = filter_normalize(
        raw, {n: w.detach().cpu() for n, w in weights.items()}, ignore=ignore
    )
    return {
        name: d.to(device=weights[name].device, dtype=weights[name].dtype)
        for name, d in normalized.items()
    }


def random_directions(
    weights: Mapping[str, torch.Tensor], n: int, *, seed: int, ignore: Ignore = "biasbn"
) -> list[Direction]:
    """``n`` independent filter-normalised Gaussian directions from one seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return [random_direction(weights, generator, ignore=ignore) for _ in range(n)]


def difference(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]) -> Direction:
    """``end - start`` for every parameter of ``end`` (shapes must match)."""
    out: Direction = {}
    for name, e in end.items():
        if name not in start:
            raise KeyError(f"parameter {name!r} is missing from the start point")
        s = start[name].to(device=e.device, dtype=e.dtype)
        if s.shape != e.shape:
            raise ValueError(f"{name}: start shape {tuple(s.shape)} != end {tuple(e.shape)}")
        out[name] = e - s
    return out


def save_directions(
    path: str | Path, directions: Mapping[str, list[Direction]], **meta: Any
) -> Path:
    """Save named lists of directions (CPU tensors) and metadata as one ``.pt`` file.

    Metadata must be plain values; numpy arrays are stored as lists.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "directions": {
            key: [{n: t.detach().cpu() for n, t in d.items()} for d in value]
            for key, value in directions.items()
        },
        "meta": {key: _plain(value) for key, value in meta.items()},
    }
    torch.save(payload, path)
    return path


def _plain(value: Any) -> Any:
    """Metadata as plain Python (``torch.load(weights_only=True)`` refuses numpy objects)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_directions(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, list[Direction]], dict[str, Any]]:
    """Read a file written by :func:`save_directions`: ``(directions, meta)``."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    return payload["directions"], payload["meta"]
