"""Loss landscapes of fine-tuning runs: lines, planes, trajectories and sharpness.

The study's ``landscape`` section (:class:`LandscapeSection`) is run by
:func:`probe.landscape.stage.run_landscape`. The pieces work on any ``transformers`` sequence
classifier (import them from their modules; this package imports no torch):

- :mod:`~probe.landscape.objective`: mean loss/accuracy on fixed, device-resident batches;
- :mod:`~probe.landscape.directions`: filter-normalised Gaussian directions (Li et al. 2018);
- :mod:`~probe.landscape.surface`: in-place, exactly restored evaluation of grid points;
- :mod:`~probe.landscape.trajectory`: the PCA plane of a training trajectory;
- :mod:`~probe.landscape.sharpness`: top Hessian eigenvalue and loss rise at a radius;
- :mod:`~probe.landscape.checkpoints`: a training job's checkpoints and how they are loaded;
- :mod:`~probe.landscape.job`: one job's analysis as named steps over a small shared state.
"""

from probe.landscape.config import LandscapeSection

__all__ = ["LandscapeSection"]
