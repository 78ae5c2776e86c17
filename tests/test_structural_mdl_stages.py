"""End to end on a tiny model and real UD EWT: the structural stage and ``probe.mdl: true``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from probe.errors import StudyError
from probe.runner import run_study
from probe.study import load_study
from probe.validate import check_study


def _write(tmp_path: Path, study: dict) -> Path:
    path = tmp_path / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _run(path: Path, runs: Path) -> Path:
    return run_study(path, runs_dir=runs, console=Console(file=io.StringIO(), width=200))


@pytest.fixture(scope="module")
def structural_run(tiny_model_dir: Path, data_dir: Path, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("structural")
    study = {
        "name": "tiny_structural",
        "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
        "capture": {"pooling": "mean"},
        "structural": {"epochs": 2, "rank": 8, "limit": {"train": 60, "dev": 20, "test": 30}},
        "figures": ["html"],
    }
    return _run(_write(tmp, study), tmp / "runs")


def test_structural_stage_writes_every_metric_per_layer_and_the_linear_baseline(structural_run):
    table = pd.read_parquet(structural_run / "results" / "structural.parquet")
    probe = table[(table.probe == "structural") & (table.split == "test")]
    for task, metrics in (("distance", {"uuas", "dspr"}), ("depth", {"root_accuracy", "nspr"})):
        rows = probe[probe.task == task]
        assert set(rows.metric) == metrics
        assert sorted(rows.layer.unique()) == [0, 1, 2]  # tiny BERT: embeddings + 2 layers
    assert probe[probe.metric.isin(["uuas", "root_accuracy"])].value.between(0, 1).all()
    linear = table[table.probe == "linear"]
    assert set(linear.metric) == {"uuas", "dspr"} and linear.layer.isna().all()
    assert (table["rank"] == 8).all()


def test_structural_example_holds_one_sentence_with_gold_and_predicted_spanning_trees(
    structural_run,
):
    example = pd.read_parquet(structural_run / "results" / "structural_example.parquet")
    words = example[example.metric == "word"]
    gold = example[example.metric == "gold_arc"]
    assert example.sentence.nunique() == 1
    for layer in (0, 1, 2):
        predicted = example[(example.metric == "predicted_arc") & (example.layer == layer)]
        assert len(predicted) == len(gold)  # both span the same non-punctuation words
    assert len(gold) < len(words)
    assert (gold.i < gold.j).all()
    figures = {p.name for p in (structural_run / "figures").iterdir()}
    assert {"structural.html", "structural_tree_tiny.html"} <= figures


@pytest.fixture(scope="module")
def mdl_run(tiny_model_dir: Path, data_dir: Path, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("mdl")
    study = {
        "name": "tiny_mdl",
        "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
        "probe": {
            "tasks": ["upos"],
            "C": [0.1, 1.0],
            "bootstrap": 0,
            "mdl": True,
            "limit": {"train": 1000, "dev": 30, "test": 30},
        },
        "figures": ["html"],
    }
    return _run(_write(tmp, study), tmp / "runs")


def test_mdl_table_has_codelength_compression_and_selectivity_in_bits(mdl_run):
    table = pd.read_parquet(mdl_run / "results" / "mdl.parquet")
    per_layer = table[table.metric == "codelength"].pivot_table(
        index="layer", columns="control", values="value"
    )
    assert sorted(per_layer.index) == [0, 1, 2]
    uniform = table[table.metric == "uniform_codelength"].value
    assert uniform.nunique() == 1
    ratio = table[(table.metric == "compression") & (table.control == "task")]
    codelength = table[(table.metric == "codelength") & (table.control == "task")]
    np.testing.assert_allclose(ratio.value.to_numpy(), uniform.iloc[0] / codelength.value)
    selectivity = table[table.metric == "selectivity_bits"].set_index("layer").value
    np.testing.assert_allclose(
        selectivity.sort_index(), (per_layer["control"] - per_layer["task"]).sort_index()
    )
    blocks = table[(table.metric == "block_codelength") & (table.layer == 0)]
    assert sorted(blocks.portion.unique()) == [0.002, 0.004, 0.008, 0.016, 0.032, 0.0625,
                                               0.125, 0.25, 0.5, 1.0]  # fmt: skip
    assert (mdl_run / "figures" / "mdl_upos.html").exists()


def test_mdl_with_too_few_training_sentences_fails_before_any_model_loads(tmp_path: Path):
    study = {"name": "x", "probe": {"tasks": ["upos"], "mdl": True, "limit": {"train": 500}}}
    with pytest.raises(StudyError, match="at least 1000 training sentences"):
        check_study(load_study(_write(tmp_path, study)))


def test_mdl_counts_sentences_with_targets_and_fails_before_any_model_loads(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch
):
    """1000 file sentences pass validation, but only 953 of them have a dependency arc."""
    import probe.probes.stage as stage

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the MDL sentence check")

    monkeypatch.setattr(stage, "load_encoder", no_model)
    study = {
        "name": "few_arcs",
        "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
        "probe": {"tasks": ["deprel"], "mdl": True, "limit": {"train": 1000}},
    }
    with pytest.raises(StudyError, match="deprel has targets in 953 training sentences"):
        _run(_write(tmp_path, study), tmp_path / "runs")


def _page(run_dir: Path, page: str):
    """The dashboard page ``page`` with the run ``run_dir`` selected (AppTest)."""
    import json
    import os

    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    runs_dir = run_dir.parent.parent
    previous = os.environ.get("PROBE_RUNS_DIR")
    os.environ["PROBE_RUNS_DIR"] = str(runs_dir)
    try:
        at = AppTest.from_file(str(app), default_timeout=60)
        at.session_state["selected_runs"] = [str(run_dir.relative_to(runs_dir))]
        at.run()
        at.switch_page(page).run()
    finally:
        if previous is None:
            os.environ.pop("PROBE_RUNS_DIR", None)
        else:
            os.environ["PROBE_RUNS_DIR"] = previous
    assert not at.exception
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_dashboard_pages_draw_the_structural_and_mdl_figures(structural_run, mdl_run):
    titles = [
        str(c["layout"]["title"]["text"]) for c in _page(structural_run, "views/structural.py")
    ]
    assert any("structural probes by layer" in t for t in titles)
    assert any("gold tree (above)" in t for t in titles)
    titles = [str(c["layout"]["title"]["text"]) for c in _page(mdl_run, "views/mdl.py")]
    assert titles == ["upos: MDL (online code) by layer"]


def test_export_rebuilds_the_structural_and_mdl_figures(structural_run, mdl_run):
    from probe.export import figures_for_run

    assert {"structural", "structural_tree_tiny"} <= set(figures_for_run(structural_run))
    assert "mdl_upos" in figures_for_run(mdl_run, style="paper")
