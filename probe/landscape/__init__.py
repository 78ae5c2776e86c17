"""Loss landscapes of fine-tuning runs: lines, planes, trajectories and sharpness.

The study's ``landscape`` section (:class:`LandscapeSection`) is run by :func:`run_landscape`.
The pieces work on any ``transformers`` sequence classifier:

- :mod:`~probe.landscape.objective`: mean loss/accuracy on fixed, device-resident batches;
- :mod:`~probe.landscape.directions`: filter-normalised Gaussian directions (Li et al. 2018);
- :mod:`~probe.landscape.surface`: in-place, exactly restored evaluation of grid points;
- :mod:`~probe.landscape.trajectory`: the PCA plane of a training trajectory;
- :mod:`~probe.landscape.sharpness`: top Hessian eigenvalue and loss rise at a radius.
"""

from probe.landscape.config import LandscapeSection

__all__ = [
    "LandscapeSection",
    "Objective",
    "Perturbation",
    "centered_grid",
    "evaluate_points",
    "filter_normalize",
    "hessian_top_eigenvalue",
    "load_directions",
    "loss_increase_at_radius",
    "perturbed",
    "random_directions",
    "run_landscape",
    "save_directions",
    "sst2_objective",
    "trajectory_plane",
]

_LAZY = {
    "Objective": "objective",
    "sst2_objective": "objective",
    "filter_normalize": "directions",
    "random_directions": "directions",
    "save_directions": "directions",
    "load_directions": "directions",
    "Perturbation": "surface",
    "perturbed": "surface",
    "centered_grid": "surface",
    "evaluate_points": "surface",
    "trajectory_plane": "trajectory",
    "hessian_top_eigenvalue": "sharpness",
    "loss_increase_at_radius": "sharpness",
    "run_landscape": "stage",
}


def __getattr__(name: str):
    # The study schema imports this package; torch and the stage load only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"probe.landscape.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'probe.landscape' has no attribute {name!r}")
