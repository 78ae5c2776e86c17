"""Layer invariance: parts of a classifier, relative change, and the per-layer 1-D curve."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from probe.landscape.convergence import convergence_rows
from probe.landscape.directions import model_parameters
from probe.landscape.layers import layer_curve, layer_parts, relative_change
from probe.landscape.objective import Objective
from probe.landscape.surface import evaluate_points
from tests.test_landscape_fixtures import fine_tune, objective, synthetic_batches, tiny_model


@pytest.fixture(scope="module")
def trained():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    model = tiny_model(seed=0)
    start = model_parameters(model)
    fine_tune(model, synthetic_batches(seed=1), steps=15)
    yield start, model
    torch.set_num_threads(threads)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().view(torch.uint8)


class _Spy(Objective):
    """An objective that also records the model's parameters at every evaluation."""

    def __init__(self, inner: Objective) -> None:
        super().__init__(inner.batches)
        self.seen: list[dict[str, torch.Tensor]] = []

    def evaluate(self, model: torch.nn.Module) -> tuple[float, float]:
        self.seen.append(model_parameters(model))
        return super().evaluate(model)


def test_parts_are_embeddings_then_each_encoder_layer_then_the_head(trained) -> None:
    _, model = trained
    parts = layer_parts(dict(model.named_parameters()))
    n_layers = model.config.num_hidden_layers
    assert [p.name for p in parts] == [
        "embeddings",
        *(f"layer.{k}" for k in range(1, n_layers + 1)),
        "head",
    ]
    assert [p.layer for p in parts] == [*range(n_layers + 1), None]
    every = [n for p in parts for n in p.parameters]
    assert sorted(every) == sorted(n for n, _ in model.named_parameters())  # each once
    assert all(n.startswith(("bert.pooler.", "classifier.")) for n in parts[-1].parameters)


def test_relative_change_is_the_norm_ratio_of_the_parts_weights(trained) -> None:
    start, model = trained
    final = model_parameters(model)
    part = layer_parts(final)[1]
    moved = torch.cat([(final[n].double() - start[n].double()).flatten() for n in part.parameters])
    base = torch.cat([start[n].flatten().double() for n in part.parameters])
    expected = float(moved.norm() / base.norm())
    assert relative_change(start, final, part) == pytest.approx(expected, rel=1e-12)
    assert relative_change(final, final, part) == 0.0


def test_layer_curve_at_alpha_one_is_the_full_model_bit_for_bit(trained) -> None:
    start, model = trained
    objectives = {"train": objective(seed=2), "dev": objective(seed=3)}
    full = evaluate_points(model, [], np.zeros((1, 0)), objectives)[0]
    for part in layer_parts(start):
        values = layer_curve(model, start, part, [1.0], objectives)
        assert np.array_equal(values[0], full), part.name  # exact, not close


def test_layer_curve_at_alpha_zero_moves_only_that_layer_to_its_initial_weights(trained) -> None:
    start, model = trained
    final = model_parameters(model)
    parts = layer_parts(final)
    for part in parts:
        spy = _Spy(objective(seed=2))
        values = layer_curve(model, start, part, [0.0, 0.5], {"train": spy})
        at_zero = spy.seen[0]
        for name in final:
            expected = start[name] if name in part.parameters else final[name]
            assert torch.equal(_bits(at_zero[name]), _bits(expected)), (part.name, name)
        # halfway, the part is between the two and the others still final
        half = spy.seen[1]
        assert any(not torch.equal(half[n], final[n]) for n in part.parameters)
        assert all(torch.equal(half[n], final[n]) for n in final if n not in part.parameters)
        # and the loss at 0 is that of a model built with this part at its initial weights
        rebuilt = tiny_model(seed=5)
        rebuilt.load_state_dict({**final, **{n: start[n] for n in part.parameters}}, strict=False)
        assert values[0, 0, 0] == objective(seed=2).evaluate(rebuilt)[0]
    after = model_parameters(model)
    assert all(torch.equal(_bits(after[n]), _bits(final[n])) for n in final)  # restored


def test_convergence_ladder_takes_the_first_checked_step_at_or_below_each_threshold() -> None:
    steps = [0, 10, 20, 30]
    loss = [0.69, 0.4, 0.09, 0.03]
    rows = [
        {"model": "j", "split": "train", "metric": m, "value": v, "step": s}
        for s, x, a, sec in zip(steps, loss, [0.5, 0.8, 0.97, 1.0], [0, 5, 10, 15], strict=True)
        for m, v in (("subset_loss", x), ("subset_accuracy", a), ("seconds", sec))
    ]
    rows += [
        {"model": "j", "split": "train", "metric": "criterion_met", "value": 1.0, "step": 30},
        {"model": "j", "split": "dev", "metric": "accuracy", "value": 0.7, "step": 30},
    ]
    out = pd.DataFrame(convergence_rows(pd.DataFrame(rows), "j", [0.5, 0.1, 0.05, 0.01]))
    ladder = out[out["metric"] == "steps_to_loss"].set_index("threshold")["value"]
    expected = {0.5: 10, 0.1: 20, 0.05: 30, 0.01: np.nan}
    assert ladder.to_dict() == pytest.approx(expected, nan_ok=True)
    seconds = out[out["metric"] == "seconds_to_loss"].set_index("threshold")["value"]
    assert seconds[0.1] == 10
    ends = out.dropna(subset=["step"]).drop_duplicates("metric", keep="last").set_index("metric")
    assert ends.loc["criterion_met", "value"] == 1.0 and ends.loc["stop_step", "value"] == 30
    assert ends.loc["final_subset_accuracy", "value"] == 1.0
    assert ends.loc["final_dev_accuracy", "value"] == 0.7


def test_study_compares_pretrained_and_scratch_jobs_with_layers_convergence_and_figures(
    tmp_path, tiny_model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.landscape.stage import run_landscape
    from probe.runner import stage_figures
    from probe.training.stage import run_training
    from tests.test_training import _context, write_sst2

    monkeypatch.setenv("PROBE_DATA_DIR", str(write_sst2(tmp_path / "data")))
    job = {
        "kind": "finetune",
        "task": "sst2",
        "max_length": 32,
        "steps": 40,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "limit": {"train": 48, "dev": 32},
        "save_every": 10,
        "stop": {"train_accuracy": 1.0, "every": 5},
    }
    study = {
        "name": "hao",
        "seed": 0,
        "figures": ["html"],
        "train": [
            {**job, "name": "pre", "model": str(tiny_model_dir), "arm": "pre"},
            {**job, "name": "scr", "model": f"scratch:{tiny_model_dir}", "arm": "scr"},
        ],
        "landscape": {
            "examples": {"train": 32, "dev": 16},
            "batch_size": 16,
            "max_length": 32,
            "line": {"points": 3},
            "random_plane": {"span": 0.5, "points": 3},
            "pca_plane": None,
            "sharpness": {"hessian_iterations": 2, "radii": [0.1], "directions": 2},
            "layers": {"points": 3},
            "convergence": {"thresholds": [0.5, 0.1]},
        },
    }
    ctx = _context(study, tmp_path)
    run_training(ctx)
    run_landscape(ctx)
    stage_figures(ctx, "landscape")

    sharp = ctx.read_table("sharpness")
    labels = sharp.drop_duplicates("model").set_index("model")[["arm", "init", "pair"]]
    assert labels.to_dict("index") == {
        "pre": {"arm": "pre", "init": "pretrained", "pair": str(tiny_model_dir)},
        "scr": {"arm": "scr", "init": "scratch", "pair": str(tiny_model_dir)},
    }
    layers = ctx.read_table("landscape_layers")
    n_parts = 2 + 2  # embeddings, two encoder layers, head
    change = layers[layers["metric"] == "relative_change"]
    assert len(change) == 2 * n_parts and (change["value"] > 0).all()
    assert sorted(layers["alpha"].dropna().unique()) == [0.0, 0.5, 1.0]
    conv = ctx.read_table("landscape_convergence")
    assert set(conv["metric"]) >= {"subset_loss", "steps_to_loss", "criterion_met", "stop_step"}
    assert len(conv[conv["metric"] == "steps_to_loss"]) == 2 * 2  # jobs x thresholds
    figures = {p.stem for p in (ctx.run_dir / "figures").glob("*.html")}
    assert {
        "landscape_convergence",
        "landscape_basins_random",
        "landscape_layers",
        "landscape_layer_curves",
    } <= figures
