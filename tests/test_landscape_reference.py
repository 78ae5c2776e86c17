"""Agreement with loss-landscapes 3.0.6 where it is right, and the pinned ways it is not."""

from __future__ import annotations

import copy

import loss_landscapes
import numpy as np
import pytest
import torch
from loss_landscapes.model_interface.model_parameters import ModelParameters, rand_u_like

from probe.landscape.directions import difference, filter_normalize, model_parameters
from probe.landscape.reference import ObjectiveMetric
from probe.landscape.surface import evaluate_points
from tests.test_landscape_fixtures import objective, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_line_agrees_with_loss_landscapes_linear_interpolation():
    start, end = tiny_model(seed=0), tiny_model(seed=1)
    obj = objective(seed=3)
    steps = 8
    theirs = loss_landscapes.linear_interpolation(
        start, end, ObjectiveMetric(obj), steps=steps, deepcopy_model=True
    )
    # They evaluate a = 1/steps, ..., 1 (never a = 0) by repeated add_ from the start model.
    alphas = np.arange(1, steps + 1) / steps
    toward_start = difference(model_parameters(end), model_parameters(start))
    ours = evaluate_points(end, [toward_start], (1.0 - alphas)[:, None], {"x": obj})[:, 0, 0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_plane_agrees_with_loss_landscapes_planar_interpolation_on_its_staggered_grid():
    # Wide initialisation: the loss varies a lot across the plane, so a shifted grid shows.
    start, one, two = (tiny_model(seed=s, initializer_range=0.5) for s in range(3))
    obj = objective(seed=3)
    steps = 4
    theirs = loss_landscapes.planar_interpolation(
        start, one, two, ObjectiveMetric(obj), steps=steps, deepcopy_model=True
    )
    base = model_parameters(start)
    directions = [difference(base, model_parameters(one)), difference(base, model_parameters(two))]
    # The grid loss-landscapes really evaluates: column i at x = i/steps; even columns at
    # y = 1..steps, odd columns at y = 0..steps-1 (in units of 1/steps).
    coords = np.array(
        [
            [i / steps, (j + (1 if i % 2 == 0 else 0)) / steps]
            for i in range(steps)
            for j in range(steps)
        ]
    )
    ours = evaluate_points(start, directions, coords, {"x": obj})[:, 0, 0].reshape(steps, steps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    # ...which is not the regular grid it is documented to be.
    regular = np.array([[i / steps, (j + 1) / steps] for i in range(steps) for j in range(steps)])
    regular_values = evaluate_points(start, directions, regular, {"x": obj})[:, 0, 0]
    mismatch = ~np.isclose(regular_values.reshape(steps, steps), theirs, rtol=1e-3)
    assert mismatch[1::2].all() and not mismatch[0::2].any()  # exactly the odd columns differ


def test_loss_landscapes_random_plane_moves_the_callers_model_and_ours_does_not():
    model = tiny_model(seed=0)
    for p in model.parameters():  # no exact-zero bias, so its filter normalisation can run
        torch.nn.init.uniform_(p, 0.1, 0.2) if p.dim() == 1 else None
    before = _params(model)
    torch.manual_seed(0)
    loss_landscapes.random_plane(
        model, ObjectiveMetric(objective()), distance=1, steps=3, normalization="filter"
    )
    after = _params(model)
    assert not all(torch.equal(before[n], after[n]) for n in before)  # left shifted
    assert not any(p.requires_grad for p in model.parameters())  # and frozen

    fresh = tiny_model(seed=0)
    state = _params(fresh)
    evaluate_points(
        fresh,
        [difference(state, _params(tiny_model(seed=1)))],
        np.array([[0.5], [1.0]]),
        {"x": objective()},
    )
    assert all(torch.equal(state[n], p) for n, p in fresh.named_parameters())
    assert all(p.requires_grad for p in fresh.parameters())


def test_loss_landscapes_directions_are_uniform_and_its_filter_norm_divides_by_zero():
    model = tiny_model(seed=0)  # fresh BERT: every bias is exactly zero
    weights = ModelParameters([p.detach().clone() for p in model.parameters()])
    torch.manual_seed(0)
    direction = rand_u_like(weights)
    assert all((d >= 0).all() for d in direction)  # uniform on [0, 1): no negative entries
    with pytest.raises(ZeroDivisionError):
        copy.deepcopy(direction).filter_normalize_(weights)
    # Ours handles the same weights (zero biases are simply left unperturbed or copied).
    named = model_parameters(model)
    raw = {n: torch.randn(w.shape) for n, w in named.items()}
    for ignore in ("biasbn", None):
        out = filter_normalize(raw, named, ignore=ignore)
        assert all(torch.isfinite(t).all() for t in out.values())
