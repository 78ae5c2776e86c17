"""Bridge to ``loss_landscapes`` 3.0.6, the reference library this package is checked against.

Where the library is correct it gives the same numbers as :mod:`probe.landscape.surface` (the
tests compare ``linear_interpolation`` and ``planar_interpolation`` point by point, and the
benchmark times ``random_plane``). The stage does not call it, because none of its grid functions
does what the stage needs correctly:

- ``linear_interpolation`` evaluates ``a = 1/steps, ..., 1`` only: never the start point, never
  beyond [0, 1], and by repeated in-place ``add_`` (the error grows along the line);
- ``planar_interpolation`` / ``random_plane`` evaluate a staggered grid (even columns at offsets
  ``1..steps`` along the second direction, odd columns at ``0..steps-1``), leave the model at the
  last grid point unless ``deepcopy_model=True`` (a full copy of the model), and set
  ``requires_grad=False`` on every parameter of the model they are given;
- ``random_plane``'s ``distance`` works inversely: each direction is scaled to
  ``||theta|| / distance`` in total, and the grid spans half of that on each side, so the
  filter-normalised coordinates run over ``[-1 / (2 distance), +1 / (2 distance)]``;
- its random directions are uniform on [0, 1), not Gaussian, and are created on the CPU (a CUDA
  model fails);
- its filter normalisation divides by every entry of a 1-D direction and raises
  ``ZeroDivisionError`` on a bias that is exactly zero (MiniLM's pooler bias, a fresh classifier
  bias) (see :mod:`probe.landscape.directions`).
"""

from __future__ import annotations

from loss_landscapes.metrics.metric import Metric
from loss_landscapes.model_interface.model_wrapper import ModelWrapper

from probe.landscape.objective import Objective

__all__ = ["ObjectiveMetric"]


class ObjectiveMetric(Metric):
    """A ``loss_landscapes`` metric: the mean loss of an :class:`Objective` (fixed batches).

    Lets the library's functions run on exactly the batches this package uses.
    """

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective

    def __call__(self, model_wrapper: ModelWrapper) -> float:
        return self.objective.evaluate(model_wrapper.modules[0])[0]
