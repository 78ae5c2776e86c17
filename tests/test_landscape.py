"""Landscape core: directions, exact in-place perturbation, grids, sharpness, trajectory PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.landscape.directions import (
    difference,
    filter_normalize,
    load_directions,
    model_parameters,
    random_direction,
    random_directions,
    save_directions,
)
from probe.landscape.objective import Objective, tokenize_batches
from probe.landscape.sharpness import (
    hessian_top_eigenvalue,
    hessian_vector_product,
    loss_increase_at_radius,
)
from probe.landscape.surface import (
    centered_grid,
    evaluate_points,
    evaluate_points_distributed,
    perturbed,
    plane_points,
    span_grid,
)
from probe.landscape.trajectory import trajectory_plane
from tests.conftest import minilm_path
from tests.test_landscape_fixtures import fine_tune, objective, synthetic_batches, tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread, and far faster on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(_one_thread):
    """(initial params, fine-tuned model) of a tiny classifier trained for a few steps."""
    model = tiny_model(seed=0)
    start = model_parameters(model)
    fine_tune(model, synthetic_batches(seed=1), steps=15)
    return start, model


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8))
        for k in a
    )


# ----------------------------------------------------------------------------- directions


def test_filter_normalised_direction_rows_have_exactly_the_norms_of_the_weight_rows(trained):
    _, model = trained
    weights = model_parameters(model)
    direction = random_direction(weights, torch.Generator().manual_seed(3), ignore="biasbn")
    matrices = [n for n, w in weights.items() if w.dim() >= 2]
    assert set(direction) == set(matrices)  # 1-D params (biases, LayerNorm) left out
    for name in matrices:
        d_rows = direction[name].reshape(len(direction[name]), -1).double().norm(dim=1)
        w_rows = weights[name].reshape(len(weights[name]), -1).double().norm(dim=1)
        torch.testing.assert_close(d_rows, w_rows, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(direction[name], weights[name])  # a direction, not the weights


def test_filter_normalisation_copies_one_dimensional_weights_when_not_ignored():
    weights = {"w": torch.tensor([[3.0, 4.0], [0.0, 0.0]]), "b": torch.tensor([0.0, 2.0])}
    raw = {"w": torch.tensor([[1.0, 1.0], [5.0, -1.0]]), "b": torch.tensor([7.0, 7.0])}
    kept = filter_normalize(raw, weights, ignore=None)
    torch.testing.assert_close(kept["b"], weights["b"])  # Li et al.: d.copy_(w)
    torch.testing.assert_close(kept["w"][0], torch.tensor([5.0, 5.0]) / 2**0.5)
    torch.testing.assert_close(kept["w"][1], torch.zeros(2))  # zero weight row, zero direction
    assert "b" not in filter_normalize(raw, weights, ignore="biasbn")


def test_random_directions_are_seeded_gaussian_and_round_trip_through_a_file(trained, tmp_path):
    _, model = trained
    weights = model_parameters(model)
    a = random_directions(weights, 2, seed=5)
    b = random_directions(weights, 2, seed=5)
    assert all(torch.equal(a[k][n], b[k][n]) for k in range(2) for n in a[k])
    raw = torch.randn(100_000, generator=torch.Generator().manual_seed(5))
    assert (raw < 0).float().mean() == pytest.approx(0.5, abs=0.01)  # Gaussian: signs balanced
    path = save_directions(tmp_path / "d.pt", {"random": a}, seed=5)
    loaded, meta = load_directions(path)
    assert meta == {"seed": 5}
    assert all(torch.equal(loaded["random"][k][n], a[k][n]) for k in range(2) for n in a[k])


# ----------------------------------------------------------------------------- grids


def test_centred_grid_has_an_exact_zero_and_line_grid_hits_the_endpoints():
    for points in (3, 11, 51):
        grid = centered_grid(0.7, points)
        assert grid[points // 2] == 0.0 and grid[0] == -0.7 and grid[-1] == pytest.approx(0.7)
    alphas = span_grid(-0.5, 1.5, 21)
    assert 0.0 in alphas and 1.0 in alphas
    with pytest.raises(ValueError, match="odd"):
        centered_grid(1.0, 10)


def test_centre_of_every_2d_grid_equals_the_loss_of_the_unperturbed_model(trained):
    start, model = trained
    objectives = {"train": objective(seed=1), "dev": objective(seed=2)}
    unperturbed = np.array([objectives[s].evaluate(model) for s in objectives])
    weights = model_parameters(model)
    d_random = random_directions(weights, 2, seed=0)
    path = [start, model_parameters(tiny_model(seed=9)), weights]
    d_pca = list(trajectory_plane(path, weights).directions)
    for directions, span in ((d_random, 1.0), (d_pca, 0.3)):
        grid = centered_grid(span, 5)
        coords = plane_points(grid, grid)
        values = evaluate_points(model, directions, coords, objectives)
        assert np.array_equal(values[len(coords) // 2], unperturbed)
        assert not np.allclose(values[0], unperturbed)  # the corners are elsewhere


def test_model_weights_are_bit_identical_after_a_landscape(trained):
    start, model = trained
    before = _state(model)
    obj = {"train": objective(seed=1)}
    weights = model_parameters(model)
    directions = random_directions(weights, 2, seed=1, ignore=None)
    grid = centered_grid(1.0, 3)
    evaluate_points(model, directions, plane_points(grid, grid), obj)
    evaluate_points(model, [difference(weights, start)], span_grid(-0.5, 1.5, 5)[:, None], obj)
    loss_increase_at_radius(model, obj, [0.1], n_directions=2, seed=0, ignore=None)
    hessian_top_eigenvalue(model, obj["train"], iterations=2)
    assert _bit_identical(before, _state(model))


def test_weights_are_restored_even_when_an_evaluation_fails(trained):
    _, model = trained
    before = _state(model)

    class Boom(Objective):
        def totals(self, model):
            raise RuntimeError("boom")

    direction = random_directions(model_parameters(model), 1, seed=0)
    with pytest.raises(RuntimeError, match="boom"):
        evaluate_points(model, direction, np.array([[0.3]]), {"x": Boom(synthetic_batches())})
    assert _bit_identical(before, _state(model))


def test_perturbation_moves_exactly_to_theta_plus_coefficients_times_directions(trained):
    _, model = trained
    weights = model_parameters(model)
    d1, d2 = random_directions(weights, 2, seed=2, ignore=None)
    with perturbed(model, [d1, d2]) as move:
        move.move_to([0.5, -0.25])
        move.move_to([0.25, 0.75])  # from the originals, not from the previous point
        for name, p in model.named_parameters():
            expected = weights[name] + 0.25 * d1[name] + 0.75 * d2[name]
            torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=1e-7)


def test_line_endpoints_are_the_initial_and_final_weights(trained):
    start, model = trained
    obj = {"train": objective(seed=1)}
    final = evaluate_points(model, [], np.zeros((1, 0)), obj)[0]
    initial_model = tiny_model(seed=0)
    initial = np.array([obj["train"].evaluate(initial_model)])
    toward_start = difference(model_parameters(model), start)
    alphas = span_grid(-0.5, 1.5, 9)
    values = evaluate_points(model, [toward_start], (1.0 - alphas)[:, None], obj)
    np.testing.assert_array_equal(values[alphas == 1.0][0], final)
    np.testing.assert_allclose(values[alphas == 0.0][0], initial, rtol=1e-5)


def test_a_grid_split_across_processes_equals_the_whole_grid(trained):
    _, model = trained
    obj = {"train": objective(seed=1)}
    directions = random_directions(model_parameters(model), 2, seed=4)
    grid = centered_grid(0.5, 3)
    coords = plane_points(grid, grid)
    whole = evaluate_points(model, directions, coords, obj)
    shards = [evaluate_points(model, directions, coords[r::3], obj) for r in range(3)]

    def fake_gather(_mine):  # what accelerate's gather_object returns on every process
        return [
            (int(i), v)
            for r in range(3)
            for i, v in zip(np.arange(r, len(coords), 3), shards[r], strict=True)
        ]

    split = evaluate_points_distributed(
        model, directions, coords, obj, process_index=1, num_processes=3, gather=fake_gather
    )
    np.testing.assert_array_equal(split, whole)


# ----------------------------------------------------------------------------- objective


def test_objective_loss_does_not_depend_on_batching_or_padding():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    texts = ["a fine film", "dull , lifeless and far too long", "yes", "not bad at all , really"]
    labels = [1, 0, 1, 1]
    model = tiny_model(seed=3, vocab_size=30522)
    small = Objective(tokenize_batches(tokenizer, texts, labels, batch_size=2))
    big = Objective(tokenize_batches(tokenizer, texts, labels, batch_size=4))
    assert [len(b["labels"]) for b in small.batches] == [2, 2]
    # Sorted by length: the short batch carries no padding of the long one.
    assert small.batches[0]["input_ids"].shape[1] < small.batches[1]["input_ids"].shape[1]
    loss_small, acc_small = small.evaluate(model)
    loss_big, acc_big = big.evaluate(model)
    assert loss_small == pytest.approx(loss_big, rel=1e-5) and acc_small == acc_big
    per_example = [
        Objective(tokenize_batches(tokenizer, [t], [y])).evaluate(model)[0]
        for t, y in zip(texts, labels, strict=True)
    ]
    assert loss_small == pytest.approx(np.mean(per_example), rel=1e-5)


# ----------------------------------------------------------------------------- sharpness


def test_power_iteration_finds_the_top_eigenvalue_of_the_full_hessian():
    model = tiny_model(
        seed=1,
        vocab_size=12,
        hidden_size=4,
        num_attention_heads=1,
        intermediate_size=4,
        num_hidden_layers=1,
        max_position_embeddings=12,
    )
    batches = synthetic_batches(n=24, batch_size=24, seed=1)
    for b in batches:
        b["input_ids"] = b["input_ids"] % 12
    obj = Objective(batches)
    params = [p for p in model.parameters()]
    sizes = [p.numel() for p in params]
    n = sum(sizes)
    columns = []
    for i in range(n):  # the exact Hessian, one basis vector at a time (n is ~250)
        e = torch.zeros(n)
        e[i] = 1.0
        columns.append(
            torch.cat(
                [
                    h.reshape(-1)
                    for h in hessian_vector_product(
                        model,
                        obj,
                        [t.reshape(p.shape) for t, p in zip(e.split(sizes), params, strict=True)],
                    )
                ]
            )
        )
    hessian = torch.stack(columns, dim=1).double()
    eigenvalues = torch.linalg.eigvalsh((hessian + hessian.T) / 2)
    result = hessian_top_eigenvalue(model, obj, iterations=300, tolerance=1e-7, seed=0)
    assert result.converged
    assert result.value == pytest.approx(eigenvalues.max().item(), rel=1e-3)
    assert result.dominant == pytest.approx(
        eigenvalues[eigenvalues.abs().argmax()].item(), rel=1e-3
    )


def test_top_eigenvalue_is_the_largest_not_the_largest_magnitude(monkeypatch):
    # A saddle: the dominant eigenvalue is -5, the largest is 3; a shifted pass must find 3.
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    matrix = q @ torch.diag(torch.tensor([-5.0, 3.0, 1.0])) @ q.T
    monkeypatch.setattr(
        "probe.landscape.sharpness.hessian_vector_product",
        lambda model, objective, v: [(matrix @ v[0].reshape(3)).reshape(1, 3)],
    )
    result = hessian_top_eigenvalue(
        torch.nn.Linear(3, 1, bias=False), None, iterations=500, tolerance=1e-9
    )
    assert result.dominant == pytest.approx(-5.0, rel=1e-4)
    assert result.value == pytest.approx(3.0, rel=1e-4)


def test_loss_increase_at_radius_is_the_loss_along_seeded_directions_minus_the_centre(trained):
    _, model = trained
    obj = {"train": objective(seed=1)}
    rises = loss_increase_at_radius(model, obj, [0.05, 0.2], n_directions=3, seed=7)
    centre = obj["train"].evaluate(model)[0]
    assert rises["train"][0.2].shape == (3, 2)
    from probe.landscape.sharpness import direction_seed

    d = random_direction(
        model_parameters(model), torch.Generator().manual_seed(direction_seed(7, 1))
    )
    with perturbed(model, [d]) as move:
        move.move_to([-0.2])
        expected = obj["train"].evaluate(model)[0] - centre
    assert rises["train"][0.2][1, 1] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    # Larger radius, larger mean rise near a (rough) minimum.
    assert rises["train"][0.2].mean() > rises["train"][0.05].mean()

    # Two processes: each evaluates every other direction, the gather joins them.
    other: list = []

    class StopError(Exception):
        pass

    def record(mine):
        other.extend(mine)
        raise StopError

    with pytest.raises(StopError):
        loss_increase_at_radius(
            model,
            obj,
            [0.05, 0.2],
            n_directions=3,
            seed=7,
            process_index=1,
            num_processes=2,
            gather=record,
        )
    assert [i for i, _ in other] == [1]
    split = loss_increase_at_radius(
        model,
        obj,
        [0.05, 0.2],
        n_directions=3,
        seed=7,
        process_index=0,
        num_processes=2,
        gather=lambda mine: mine + other,
    )
    for r in (0.05, 0.2):
        np.testing.assert_array_equal(split["train"][r], rises["train"][r])


# ----------------------------------------------------------------------------- trajectory


def test_trajectory_pca_recovers_the_plane_a_path_lies_in():
    g = torch.Generator().manual_seed(0)
    origin = {"a": torch.randn(30, 4, generator=g), "b": torch.randn(7, generator=g)}
    u = {k: torch.randn(v.shape, generator=g) for k, v in origin.items()}
    v = {k: torch.randn(v.shape, generator=g) for k, v in origin.items()}
    t = np.linspace(-1.0, 0.0, 8)
    path = [{k: origin[k] + float(3 * s) * u[k] + float(s**2) * v[k] for k in origin} for s in t]
    plane = trajectory_plane(path, origin, ignore=None)
    assert plane.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)
    d1, d2 = plane.directions
    flat = [torch.cat([d[k].reshape(-1) for k in origin]).double() for d in (d1, d2)]
    assert float(flat[0] @ flat[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(flat[0] @ flat[1]) == pytest.approx(0.0, abs=1e-6)
    # Every checkpoint is reconstructed exactly from its two coordinates.
    for point, (x, y) in zip(path, plane.coords, strict=True):
        for k in origin:
            torch.testing.assert_close(
                origin[k] + x * d1[k] + y * d2[k], point[k], rtol=1e-4, atol=1e-4
            )
    assert (plane.coords[0] <= 0).all() and np.allclose(plane.coords[-1], 0, atol=1e-6)
    # ignore="biasbn" leaves 1-D parameters out of the directions.
    assert "b" not in trajectory_plane(path, origin).directions[0]
