"""Experiment trackers: result tables become scalar series; TensorBoard reads back what was sent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from probe.results import tidy
from probe.trackers import Trackers, resolve_report_to, table_scalars, tracker_problems


def _probe_table() -> pd.DataFrame:
    rows = [
        {"model": "tiny", "task": "upos", "layer": layer, "probe": "linear", "control": "task",
         "seed": 0, "split": "test", "metric": "accuracy", "value": 0.5 + 0.1 * layer}
        for layer in range(3)
    ] + [{"model": "tiny", "task": "upos", "layer": pd.NA, "probe": "majority", "control": "task",
          "seed": 0, "split": "test", "metric": "accuracy", "value": 0.3}]  # fmt: skip
    return tidy(rows, study="s")


def test_probe_rows_become_a_curve_over_layers() -> None:
    scalars = list(table_scalars("probe", _probe_table()))
    linear = [
        (v, s) for t, v, s in scalars if t == "probe/tiny/upos/linear/task/seed=0/test/accuracy"
    ]
    assert linear == [(0.5, 0), (pytest.approx(0.6), 1), (pytest.approx(0.7), 2)]
    assert ("probe/tiny/upos/majority/task/seed=0/test/accuracy", 0.3, 0) in scalars


def test_a_grid_table_is_not_logged_as_scalars() -> None:
    grid = tidy([{"model": "m", "metric": "loss", "x": x, "y": y, "value": 1.0}
                 for x in range(2) for y in range(2)], study="s")  # fmt: skip
    assert list(table_scalars("landscape_2d", grid)) == []


def test_report_to_follows_transformers_convention() -> None:
    assert resolve_report_to("none") == []
    assert resolve_report_to(["tensorboard", "tensorboard"]) == ["tensorboard"]
    installed = tracker_problems("tensorboard") == []
    assert ("tensorboard" in resolve_report_to("all")) == installed


def test_missing_tracker_package_is_a_problem_naming_the_install(monkeypatch) -> None:
    import probe.trackers as trackers

    monkeypatch.setitem(trackers.TRACKERS, "wandb", "surely_not_installed_pkg")
    assert "pip install surely_not_installed_pkg" in tracker_problems(["wandb"])[0]


def test_tensorboard_events_hold_the_table(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trackers = Trackers(["tensorboard"], tmp_path, "s/run", {"name": "s"})
    assert trackers.log_table("probe", _probe_table()) == 4
    trackers.close()
    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    series = events.Scalars("probe/tiny/upos/linear/task/seed=0/test/accuracy")
    assert [(e.step, round(e.value, 6)) for e in series] == [(0, 0.5), (1, 0.6), (2, 0.7)]
