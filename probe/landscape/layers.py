"""Layer invariance (Hao et al. 2019, section 5): how much each layer moved, and which layers
the fitted solution depends on.

- :func:`layer_parts` groups a classifier's parameters into parts: ``embeddings`` (layer 0),
  ``layer.<l>`` (encoder layer ``l``, numbered from 1 as everywhere in probe) and ``head``
  (pooler and classifier, no layer number);
- :func:`relative_change`: ``||theta_1 - theta_0|| / ||theta_0||`` over one part's parameters;
- :func:`layer_curve`: the loss when only one part is moved from its initial (``alpha = 0``) to
  its final (``alpha = 1``) weights, every other part final.

The curve's points are ``torch.lerp(theta_0, theta_1, alpha)``, which is exact at both ends
(torch computes ``end - (end - start) (1 - w)`` for ``w >= 0.5``): ``alpha = 1`` is the trained
model bit for bit and ``alpha = 0`` puts the part's initial weights back bit for bit, which
``theta_1 + c (theta_0 - theta_1)`` would miss by rounding. The model's own tensors are moved in
place and copied back from a stored original afterwards, even if an evaluation raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from probe.landscape.objective import Objective

__all__ = ["LayerPart", "layer_curve", "layer_parts", "relative_change"]

_ENCODER_LAYER = re.compile(r"(?:^|\.)(?:encoder\.)?layers?\.(\d+)\.")


@dataclass(frozen=True)
class LayerPart:
    """One part of the network: its name, layer number (None for the head) and parameters."""

    name: str
    layer: int | None
    parameters: tuple[str, ...]


def layer_parts(names: Iterable[str]) -> list[LayerPart]:
    """Parameter names grouped into ``embeddings``, ``layer.1`` ... ``layer.L`` and ``head``.

    >>> [(p.name, p.layer) for p in layer_parts([
    ...     "bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.output.dense.weight",
    ...     "bert.encoder.layer.1.output.dense.weight", "bert.pooler.dense.weight",
    ...     "classifier.weight"])]
    [('embeddings', 0), ('layer.1', 1), ('layer.2', 2), ('head', None)]
    """
    groups: dict[tuple[int, str], list[str]] = {}
    for name in names:
        found = _ENCODER_LAYER.search(name)
        if found is not None:
            layer = int(found.group(1)) + 1
            key = (layer, f"layer.{layer}")
        elif "embeddings." in name:
            key = (0, "embeddings")
        else:
            key = (10**9, "head")
        groups.setdefault(key, []).append(name)
    return [
        LayerPart(label, None if label == "head" else order, tuple(params))
        for (order, label), params in sorted(groups.items())
    ]


def relative_change(
    theta0: Mapping[str, torch.Tensor], theta1: Mapping[str, torch.Tensor], part: LayerPart
) -> float:
    """``||theta_1 - theta_0|| / ||theta_0||`` over the part's parameters (float64 sums)."""
    moved = sum(
        float(((theta1[n].double().cpu() - theta0[n].double().cpu()) ** 2).sum())
        for n in part.parameters
    )
    norm = sum(float((theta0[n].double().cpu() ** 2).sum()) for n in part.parameters)
    return (moved / norm) ** 0.5 if norm > 0 else float("nan")


def layer_curve(
    model: torch.nn.Module,
    theta0: Mapping[str, torch.Tensor],
    part: LayerPart,
    alphas: Sequence[float],
    objectives: Mapping[str, Objective],
    on_point: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Loss and accuracy with only ``part`` at ``lerp(theta_0, theta_1, alpha)``.

    ``model`` holds the final weights ``theta_1`` (restored exactly afterwards); ``theta0`` the
    initial weights of (at least) the part's parameters, on any device.

    Returns
    -------
    np.ndarray of shape (len(alphas), len(objectives), 2)
        ``[:, j, 0]`` the loss and ``[:, j, 1]`` the accuracy on objective ``j``.
    """
    params = dict(model.named_parameters())
    live = [params[n] for n in part.parameters]
    final = [p.detach().clone() for p in live]
    start = [
        theta0[n].to(device=p.device, dtype=p.dtype)
        for n, p in zip(part.parameters, live, strict=True)
    ]
    values = np.empty((len(alphas), len(objectives), 2))
    try:
        with torch.no_grad():
            for i, alpha in enumerate(alphas):
                for p, a, b in zip(live, start, final, strict=True):
                    p.copy_(torch.lerp(a, b, float(alpha)))
                for j, objective in enumerate(objectives.values()):
                    values[i, j] = objective.evaluate(model)
                if on_point is not None:
                    on_point(i + 1)
    finally:
        with torch.no_grad():
            for p, b in zip(live, final, strict=True):
                p.copy_(b)
    return values
