"""End to end on a tiny model and a slice of real UD EWT: run folder, tables, cache, determinism."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from rich.console import Console

from probe.errors import RunInterruptedError
from probe.results import COLUMNS
from probe.runner import run_study


def _study(tmp_path: Path, model_dir: Path, name: str = "tiny_pos") -> Path:
    study = {
        "name": name,
        "seed": 0,
        "models": [{"spec": str(model_dir), "name": "tiny"}],
        "probe": {
            "tasks": ["upos"],
            "limit": {"train": 80, "dev": 30, "test": 30},
            "C": [0.1, 1.0],
            "bootstrap": 50,
        },
        "figures": ["html"],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _run(path: Path, runs: Path) -> tuple[Path, str]:
    buffer = io.StringIO()
    run_dir = run_study(path, runs_dir=runs, console=Console(file=buffer, width=200))
    return run_dir, buffer.getvalue()


@pytest.fixture(scope="module")
def two_runs(tiny_model_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("runner")
    path = _study(tmp, tiny_model_dir)
    first = _run(path, tmp / "runs")
    second = _run(path, tmp / "runs")
    return first, second


def test_run_folder_has_manifest_tables_and_figures(two_runs) -> None:
    (run_dir, _), _ = two_runs
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["stages"]["probe"]["status"] == "done"
    assert manifest["stages"]["probe"]["seconds"] > 0
    assert {"torch", "transformers"} <= set(manifest["versions"])
    assert manifest["config"]["probe"]["tasks"] == ["upos"]
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert (run_dir / "results" / "probe.csv").exists()
    assert (run_dir / "figures" / "layerwise_upos.html").exists()
    layers = table[
        (table.metric == "accuracy") & (table.control == "task") & (table.probe == "linear")
    ].layer
    assert sorted(layers.unique()) == [0, 1, 2]
    assert {"selectivity", "accuracy", "C"} <= set(table.metric)
    assert {"linear", "majority"} <= set(table.probe)


def test_manifest_breaks_the_probe_stage_time_into_parts(two_runs) -> None:
    (run_dir, output), _ = two_runs
    manifest = json.loads((run_dir / "manifest.json").read_text())
    parts = manifest["stages"]["probe"]["parts"]
    assert {p["part"] for p in parts} >= {
        "features",
        "task probe",
        "control probe",
        "task scores + bootstrap",
        "figures",
    }
    assert {p["split"] for p in parts if p["part"] == "features"} == {"train", "dev", "test"}
    assert all(
        p["model"] == "tiny" and p["task"] == "upos" for p in parts if p["part"] != "figures"
    )
    # the parts run one after another inside the stage: together never more than its wall time
    assert 0 < sum(p["seconds"] for p in parts) <= manifest["stages"]["probe"]["seconds"]
    assert "where the time went" in output and "control probe" in output


def test_same_study_and_seed_give_identical_results_table(two_runs) -> None:
    (first, _), (second, _) = two_runs
    a = pd.read_parquet(first / "results" / "probe.parquet")
    b = pd.read_parquet(second / "results" / "probe.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_rerun_skips_capture_and_keeps_the_earlier_run(two_runs) -> None:
    (first, first_log), (second, second_log) = two_runs
    assert first != second and first.exists() and second.exists()
    assert "captured" in first_log
    assert "capture skipped" in second_log and "captured" not in second_log
    assert "upos: test accuracy (selectivity) by layer" in first_log  # the per-layer table


def test_test_accuracy_beats_majority_and_control_on_real_data(two_runs) -> None:
    (run_dir, _), _ = two_runs
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    test = table[table.split == "test"]
    task = test[(test.probe == "linear") & (test.control == "task") & (test.metric == "accuracy")]
    majority = test[test.probe == "majority"].value.iloc[0]
    # Even a random tiny BERT's embeddings identify frequent words' tags better than majority.
    assert task.value.max() > majority + 0.1
    ci = task.dropna(subset=["ci_low"])
    assert ((ci.ci_low <= ci.value) & (ci.value <= ci.ci_high)).all()


def test_seeds_share_the_task_fit_and_draw_their_own_control_tasks(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    path = _study(tmp_path, tiny_model_dir, name="tiny_pos_seeds")
    study = yaml.safe_load(path.read_text())
    study["probe"]["seeds"] = [0, 1]
    path.write_text(yaml.safe_dump(study))
    run_dir, log = _run(path, tmp_path / "runs")
    assert log.count("upos probe: ") == 1  # the task fit does not depend on the seed
    assert "upos control (seed 0): " in log and "upos control (seed 1): " in log
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    acc = table[(table.metric == "accuracy") & (table.probe == "linear") & (table.split == "test")]
    by_seed = acc.pivot_table(index=["control", "layer"], columns="seed", values="value")
    task, control = by_seed.loc["task"], by_seed.loc["control"]
    assert (task[0] == task[1]).all()
    assert (control[0] != control[1]).any()


def test_sigterm_marks_the_run_interrupted(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import time

    import probe.runner

    def killed_mid_stage(ctx) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill` or a scheduler's time limit sends
        time.sleep(10)  # the handler interrupts this

    monkeypatch.setattr(probe.runner, "load_function", lambda target: killed_mid_stage)
    with pytest.raises(RunInterruptedError, match="--resume"):
        _run(_study(tmp_path, tiny_model_dir), tmp_path / "runs")
    (manifest_path,) = (tmp_path / "runs").glob("*/*/manifest.json")
    assert json.loads(manifest_path.read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed afterwards
