"""Dashboard pages with several runs: selection and links, colours, and what each page says."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from probe.results import tidy
from probe.runs import list_runs
from tests.test_dashboard import (
    APP,
    FULL,
    OLDER,
    PARTIAL,
    _charts,
    _manifest,
    _summary_rows,
    _texts,
    _write_run,
    make_fixture_runs,
)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_runs(tmp_path_factory.mktemp("runs"))


def _app(runs_dir: Path, selected=None, page=None, query=None):
    from streamlit.testing.v1 import AppTest

    previous = os.environ.get("PROBE_RUNS_DIR")
    os.environ["PROBE_RUNS_DIR"] = str(runs_dir)
    try:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if selected is not None:
            at.session_state["selected_runs"] = selected
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        if page is not None:
            at.switch_page(page).run()
    finally:
        if previous is None:
            del os.environ["PROBE_RUNS_DIR"]
        else:
            os.environ["PROBE_RUNS_DIR"] = previous
    assert not at.exception, [e.value for e in at.exception]
    return at


def _colours(charts: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for chart in charts:
        for trace in chart["data"]:
            name = trace.get("legendgroup") or trace.get("name")
            colour = (trace.get("line") or {}).get("color") or (trace.get("marker") or {}).get(
                "color"
            )
            if name and isinstance(colour, str) and colour.startswith("#") and colour != "#888888":
                out.setdefault(name, set()).add(colour)
    return out


# --------------------------------------------------------------------------- selection, links


def test_a_link_to_an_unknown_run_says_so_and_shows_no_other_run(runs_dir: Path) -> None:
    at = _app(runs_dir, query={"run": "full/19990101-000000"})
    assert at.sidebar.multiselect[0].value == []
    assert "not under this runs directory" in _texts(at) and "19990101-000000" in _texts(at)
    # A link to a known run opens exactly that run.
    at = _app(runs_dir, query={"run": OLDER})
    assert at.sidebar.multiselect[0].value == [OLDER]


def test_the_address_bar_follows_the_selection(runs_dir: Path) -> None:
    at = _app(runs_dir, selected=[FULL, OLDER])
    assert at.query_params["run"] == [FULL, OLDER]
    at.sidebar.multiselect[0].set_value([OLDER]).run()
    assert at.query_params["run"] in ([OLDER], OLDER)


def test_sidebar_chips_put_the_time_first() -> None:
    import dashboard.shared as shared

    assert shared.short_label("pipeline/20261201-060045") == "12-01 06:00:45 · pipeline"
    assert shared.short_label("odd-name") == "odd-name"


def test_default_selection_is_the_newest_finished_run(tmp_path: Path) -> None:
    import dashboard.shared as shared

    make_fixture_runs(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    manifest = _manifest("full", "running", {"train": "running"}, {"train": {"jobs": []}})
    manifest.update(host=socket.gethostname(), pid=dead.pid)
    _write_run(tmp_path, "full/20260109-000000", manifest, {"training": pd.DataFrame(
        {"model": ["x"], "task": ["sst2"], "split": ["train"], "metric": ["loss"],
         "step": [1], "value": [0.5]})})  # fmt: skip
    runs = list_runs(tmp_path)
    stopped = next(run for run in runs if run.label == "full/20260109-000000")
    assert stopped.status == "stopped" and stopped.stages == {"train": "stopped"}
    assert shared.default_selection(runs) == [FULL]


# --------------------------------------------------------------------------- pages


@pytest.mark.parametrize(
    "page",
    ["views/probing.py", "views/summary.py", "views/training.py", "views/embeddings.py",
     "views/landscape.py"],
)  # fmt: skip
def test_each_series_has_one_colour_on_every_page(runs_dir: Path, page: str) -> None:
    at = _app(runs_dir, [FULL, OLDER], page)
    colours = _colours(_charts(at))
    assert colours, page
    assert all(len(c) == 1 for c in colours.values()), colours


def test_colours_are_the_same_across_pages(runs_dir: Path) -> None:
    merged: dict[str, set[str]] = {}
    for page in ("views/probing.py", "views/summary.py"):
        for name, colours in _colours(_charts(_app(runs_dir, [FULL, OLDER], page))).items():
            merged.setdefault(name, set()).update(colours)
    assert all(len(c) == 1 for c in merged.values()), merged


def test_probe_numbers_are_percent_with_ci_columns(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/probing.py")
    table = next(d.value for d in at.dataframe if "layer" in d.value)
    assert {"task accuracy", "task accuracy 95% low", "task accuracy 95% high"} <= set(table)
    upos = table[(table.model == "minilm") & (table.task == "upos") & (table.layer == 1)]
    assert upos["task accuracy"].iloc[0] == pytest.approx(60.0)
    assert upos["task accuracy 95% low"].iloc[0] == pytest.approx(58.0)
    assert "band: 95% bootstrap CI" in _texts(at)
    at.radio(key="probe_split").set_value("dev").run()
    assert "no CI band" in _texts(at)


def test_probe_page_metric_selector_defaults_to_headline_and_redraws(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/probing.py")
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert titles == ["upos: probe accuracy by layer (test)",
                      "ner_conll2003: probe macro-F1 by layer (test)"]  # fmt: skip
    at.selectbox(key="probe_metric").set_value("accuracy").run()
    assert [c["layout"]["title"]["text"] for c in _charts(at)][1].startswith(
        "ner_conll2003: probe accuracy"
    )


def test_probe_page_with_no_task_says_so(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/probing.py")
    at.multiselect(key="probe_tasks").set_value([]).run()
    assert "No task chosen" in _texts(at) and not _charts(at)


def test_summary_table_blanks_centers_of_gravity_that_are_not_meaningful(tmp_path: Path) -> None:
    rows = _summary_rows(0.0)
    flat = (rows.model == "minilm-scratch") & (rows.metric == "delta")
    rows.loc[flat, "value"] = 0.001  # layers add 0.2 points in total: no meaningful center
    rows.loc[(rows.model == "minilm-scratch") & (rows.metric == "center_of_gravity"), "value"] = 7.4
    _write_run(tmp_path, "p/20260101-000000",
               _manifest("p", "complete", {"probe": "done"}, {"probe": {"mix": True}}),
               {"probe_summary": tidy(rows, study="p")})  # fmt: skip
    at = _app(tmp_path, ["p/20260101-000000"], "views/summary.py")
    table = next(d.value for d in at.dataframe if "center of gravity" in d.value)
    scratch = table[table.model == "minilm-scratch"]
    assert scratch["center of gravity"].isna().all()
    assert scratch["note"].str.contains("not meaningful").all()
    assert table[table.model == "minilm"]["center of gravity"].notna().all()


def test_embeddings_selectors_drive_the_figures(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/embeddings.py")
    before = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert any("Spearman" in t for t in before)
    metrics = at.selectbox(key="emb_metric").options
    if "pearson" in metrics:
        at.selectbox(key="emb_metric").set_value("pearson").run()
        after = [c["layout"]["title"]["text"] for c in _charts(at)]
        assert any("Pearson" in t for t in after)


def test_landscape_draws_only_the_open_section(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/landscape.py")
    assert len(_charts(at)) == 2
    at.segmented_control(key="landscape_section").set_value("3-D").run()
    charts = _charts(at)
    assert len(charts) == 2 and all(c["data"][0]["type"] == "surface" for c in charts)


def test_a_stopped_runs_pages_warn_that_curves_are_partial(runs_dir: Path) -> None:
    at = _app(runs_dir, [PARTIAL], "views/probing.py")
    assert "did not finish" not in _texts(at)  # the stage of a live run is running, not partial
    assert "stage is running" in _texts(at)


def test_details_page_reports_a_failed_static_export(tmp_path: Path) -> None:
    manifest = _manifest("p", "complete", {"probe": "done"}, {"probe": {}})
    manifest["figure_export_errors"] = {
        "layerwise_upos": {"formats": ["png"], "error": "static figure export failed (no chrome)"}
    }
    _write_run(tmp_path, "p/20260101-000000", manifest, {})
    text = _texts(_app(tmp_path, ["p/20260101-000000"], "views/details.py"))
    assert "written as HTML only" in text and "png" in text


def test_failed_static_export_is_recorded_in_the_manifest(tmp_path: Path, monkeypatch) -> None:
    import plotly.graph_objects as go

    import probe.rundir as rundir
    from probe.figures.export import StaticExportError

    calls = []

    def fake_write(figures, folder, formats, **kwargs):
        calls.append(list(formats))
        if any(f != "html" for f in formats):
            raise StaticExportError("static figure export failed (no chromium)")
        return []

    monkeypatch.setattr(rundir, "write_figures", fake_write)
    ctx = rundir.RunContext.__new__(rundir.RunContext)
    ctx.run_dir = tmp_path
    ctx.manifest = {"figures": []}
    ctx.study = type("S", (), {"figures": ["html", "png"]})()
    from rich.console import Console

    ctx.console = Console(file=open(os.devnull, "w"))  # noqa: SIM115
    ctx.save_figures({"layerwise_upos": go.Figure()})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert calls == [["html", "png"], ["html"]]
    assert manifest["figure_export_errors"]["layerwise_upos"]["formats"] == ["png"]
    assert "no chromium" in manifest["figure_export_errors"]["layerwise_upos"]["error"]


def _stopped_training_run(root: Path) -> Path:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process: the run was killed
    manifest = _manifest(
        "pre", "running", {"train": "running"}, {"train": {"jobs": [{"name": "tiny"}]}}
    )
    manifest.update(host=socket.gethostname(), pid=dead.pid)
    training = pd.DataFrame(
        {"model": "tiny", "task": "mlm_nsp", "split": "train", "metric": "loss",
         "step": [1, 2, 3], "value": [7.0, 6.5, 6.2]}
    )  # fmt: skip
    return _write_run(root, "pre/20260101-000000", manifest, {"training": training})


def test_a_stopped_run_is_flagged_on_its_pages_and_in_its_export(tmp_path: Path) -> None:
    from probe.export import export_run

    run = _stopped_training_run(tmp_path)
    at = _app(tmp_path, ["pre/20260101-000000"], "views/training.py")
    assert "stopped before finishing (run status: stopped)" in _texts(at)
    assert "figures show only what was written" in _texts(at)
    result = export_run(run, formats="html", out=tmp_path / "out")
    assert "training" in result.partial and result.skipped == {}
    html = (tmp_path / "out" / "training_mlm_nsp.html").read_text()
    assert "PARTIAL: the train stage stopped before finishing" in html


def test_export_does_not_call_stages_the_study_never_asked_for_skipped(tmp_path: Path) -> None:
    from probe.export import export_run

    run = _stopped_training_run(tmp_path)  # a train-only study: no probe, embeddings, landscape
    assert export_run(run, formats="html", out=tmp_path / "out").skipped == {}
