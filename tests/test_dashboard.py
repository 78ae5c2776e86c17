"""The Streamlit dashboard over run folders: every page, partial and broken runs, a real browser.

The fixture runs are written by the tests themselves through the pinned table schemas the stages
write with (probe/schemas.py: an unknown column fails), so the pages are exercised without running a
model. The browser test starts ``streamlit run`` and drives headless Chromium over the DevTools
protocol (``websockets`` ships with Streamlit), because ``chromium --screenshot`` captures before
Streamlit has drawn anything.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probe.results import write_table
from probe.runs import find_run_dirs, list_runs, open_run, run_signature
from probe.schemas import SCHEMAS

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FULL, OLDER = "full/20260102-000000", "full/20260101-000000"
PARTIAL, BAD_MANIFEST, NO_MANIFEST = (
    "partial/20260103-000000", "broken/20260104-000000", "broken/20260105-000000",
)  # fmt: skip
MODELS = ("minilm", "minilm-scratch")


# --------------------------------------------------------------------------- fixture runs


def _probe_rows(shift: float) -> pd.DataFrame:
    """Rows as probe/probes/stage.py writes them: task/control/selectivity/C/majority."""
    rows = []
    for m, model in enumerate(MODELS):
        for task in ("upos", "ner_conll2003"):
            for split in ("dev", "test"):
                for layer in range(3):
                    acc = 0.5 + 0.1 * layer - 0.2 * m + shift
                    ci = {"ci_low": acc - 0.02, "ci_high": acc + 0.02} if split == "test" else {}
                    common = {
                        "model": model,
                        "task": task,
                        "layer": layer,
                        "seed": 0,
                        "split": split,
                        "probe": "linear",
                    }
                    rows += [
                        {**common, "control": "task", "metric": "accuracy", "value": acc, **ci},
                        {**common, "control": "control", "metric": "accuracy", "value": 0.4},
                        {**common, "control": "task", "metric": "selectivity", "value": acc - 0.4},
                    ]
                    if task == "ner_conll2003":
                        rows.append(
                            {**common, "control": "task", "metric": "macro_f1", "value": acc - 0.1}
                        )
                    if split == "dev":
                        rows.append({**common, "control": "task", "metric": "C", "value": 1.0})
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "layer": pd.NA,
                        "seed": 0,
                        "split": split,
                        "probe": "majority",
                        "control": "task",
                        "metric": "accuracy",
                        "value": 0.2,
                    }
                )
    return pd.DataFrame(rows)


def _summary_rows(shift: float) -> pd.DataFrame:
    """Rows as layer_summaries() writes them: center of gravity, expected layer, mix-k, weights."""
    rows = []
    for model in MODELS:
        for t, task in enumerate(("upos", "ner_conll2003")):
            common = {"model": model, "task": task, "seed": 0, "control": "task", "split": "test"}
            rows += [
                {
                    **common,
                    "layer": pd.NA,
                    "metric": "center_of_gravity",
                    "probe": "mix-k",
                    "value": 1.0 + t + shift,
                },
                {
                    **common,
                    "layer": pd.NA,
                    "metric": "expected_layer",
                    "probe": "mix",
                    "value": 1.2 + t,
                },
            ]
            weights = np.array([0.2, 0.3, 0.5])[:: (1 if t else -1)]
            for layer in range(3):
                rows += [
                    {
                        **common,
                        "layer": layer,
                        "metric": "mix_weight",
                        "probe": "mix",
                        "value": weights[layer],
                    },
                    {
                        **common,
                        "layer": layer,
                        "metric": "accuracy",
                        "probe": "mix-k",
                        "value": 0.6 + 0.1 * layer,
                    },
                ]
                if layer:
                    rows.append(
                        {
                            **common,
                            "layer": layer,
                            "metric": "delta",
                            "probe": "mix-k",
                            "value": 0.1 + 0.05 * t,
                        }
                    )
    return pd.DataFrame(rows)


def _training_rows(shift: float) -> pd.DataFrame:
    """Rows as training_table() writes them: steps, constants with step NA, kind, epoch."""
    rows = []
    for j, job in enumerate(("pretrained", "scratch")):
        common = {"model": job, "task": "sst2", "seed": 0, "kind": "finetune"}
        rows.append(
            {
                **common,
                "split": "dev",
                "metric": "majority_accuracy",
                "value": 0.51,
                "step": None,
                "epoch": None,
            }
        )
        for step in range(0, 21):
            rows += [
                {
                    **common,
                    "split": "train",
                    "metric": "loss",
                    "step": step,
                    "epoch": step / 20,
                    "value": 0.7 * np.exp(-step / (8 + 10 * j)) + shift,
                },
                {
                    **common,
                    "split": "train",
                    "metric": "lr",
                    "step": step,
                    "epoch": step / 20,
                    "value": 5e-5,
                },
            ]
            if step % 5 == 0:
                rows += [
                    {
                        **common,
                        "split": "dev",
                        "metric": "loss",
                        "step": step,
                        "epoch": step / 20,
                        "value": 0.7 - 0.01 * step,
                    },
                    {
                        **common,
                        "split": "dev",
                        "metric": "accuracy",
                        "step": step,
                        "epoch": step / 20,
                        "value": 0.5 + 0.015 * step / (1 + j),
                    },
                ]
        rows.append(
            {
                **common,
                "split": "train",
                "metric": "tokens_per_s",
                "value": 900.0,
                "step": None,
                "epoch": None,
            }
        )
    frame = pd.DataFrame(rows)
    frame["step"] = pd.array(frame["step"], dtype="Int64")
    return frame


def _embeddings_rows(shift: float) -> pd.DataFrame:
    """Rows as run_embeddings() writes them: pooling, pooling_spec, whitening, fit_on, n."""
    rows = []
    poolings = [("cls", 2, "cls", True), ("mean", pd.NA, "mean", True)]
    poolings += [(f"mean@{layer}", layer, "mean", False) for layer in range(3)]
    for model in ("minilm", "minilm-sst2"):
        for spec, layer, name, headline in poolings:
            for variant, fit_on in (("raw", None), ("whiten", "target")):
                common = {
                    "model": model,
                    "pooling": name,
                    "layer": layer,
                    "seed": 0,
                    "pooling_spec": spec,
                    "layers": None if pd.isna(layer) else str(layer),
                    "headline": headline,
                    "task": "stsb",
                    "split": "test",
                    "whitening": variant,
                    "fit_on": fit_on,
                }
                base = 60 + 5 * (variant == "whiten") + (0 if pd.isna(layer) else layer) + shift
                rows += [
                    {**common, "metric": "spearman", "value": base, "n": 100},
                    {**common, "metric": "pearson", "value": base - 1, "n": 100},
                    {
                        **common,
                        "metric": "avg_cosine",
                        "value": 0.6 - 0.5 * (variant != "raw"),
                        "n": 150,
                    },
                    {**common, "metric": "top1_variance_share", "value": 0.2, "n": 150},
                ]
    return pd.DataFrame(rows)


def _landscape_tables(shift: float) -> dict[str, pd.DataFrame]:
    """The four tables of run_landscape(): trajectory, 1-D line, 2-D planes, sharpness."""
    trajectory, line, plane, sharpness = [], [], [], []
    grid = np.linspace(-1, 1, 5)
    for j, job in enumerate(("pretrained", "scratch")):
        common = {"model": job, "task": "sst2", "seed": 0}
        for k, step in enumerate((0, 10, 20)):
            for split in ("train", "dev"):
                xy = {"x": -2.0 + k, "y": 0.1 * k, "pc1_variance": 0.9, "pc2_variance": 0.05}
                label = "final" if step == 20 else f"step-{step}"
                trajectory += [
                    {
                        **common,
                        "checkpoint": label,
                        "step": step,
                        "split": split,
                        "metric": "loss",
                        "value": 0.7 / (1 + k) + shift,
                        **xy,
                    },
                    {
                        **common,
                        "checkpoint": label,
                        "step": step,
                        "split": split,
                        "metric": "accuracy",
                        "value": 0.5 + 0.2 * k,
                        **xy,
                    },
                ]
        for alpha in np.linspace(-0.5, 1.5, 5):
            for split in ("train", "dev"):
                line += [
                    {
                        **common,
                        "checkpoint": "final",
                        "alpha": alpha,
                        "split": split,
                        "metric": "loss",
                        "value": 0.2 + (alpha - 1) ** 2,
                    },
                    {
                        **common,
                        "checkpoint": "final",
                        "alpha": alpha,
                        "split": split,
                        "metric": "accuracy",
                        "value": 0.9 - 0.1 * abs(alpha - 1),
                    },
                ]
        for kind in ("random", "pca"):
            extra = {"pc1_variance": 0.9, "pc2_variance": 0.05} if kind == "pca" else {}
            for x in grid:
                for y in grid:
                    for split in ("train", "dev"):
                        loss = 0.1 + (1 + j) * (x**2 + y**2)
                        plane += [
                            {
                                **common,
                                "checkpoint": "final",
                                "plane": kind,
                                "x": x,
                                "y": y,
                                "split": split,
                                "metric": "loss",
                                "value": loss,
                                **extra,
                            },
                            {
                                **common,
                                "checkpoint": "final",
                                "plane": kind,
                                "x": x,
                                "y": y,
                                "split": split,
                                "metric": "accuracy",
                                "value": 1 - loss / 5,
                                **extra,
                            },
                        ]
        for split in ("train", "dev"):
            for radius in (0.05, 0.1):
                for metric, value in (
                    ("loss_increase_mean", radius * (1 + j)),
                    ("loss_increase_std", 0.01),
                    ("loss_increase_max", 0.2),
                ):
                    sharpness.append(
                        {
                            **common,
                            "checkpoint": "final",
                            "split": split,
                            "metric": metric,
                            "value": value,
                            "radius": radius,
                            "n_directions": 4,
                        }
                    )
        sharpness += [
            {
                **common,
                "checkpoint": "final",
                "split": "train",
                "metric": "hessian_top_eigenvalue",
                "value": 10.0 * (1 + j),
                "iterations": 20,
                "converged": True,
            },
            {
                **common,
                "checkpoint": "final",
                "split": pd.NA,
                "metric": "distance_from_init",
                "value": 3.0,
                "n_parameters": 1000,
            },
        ]
    frames = {
        "landscape_trajectory": trajectory,
        "landscape_1d": line,
        "landscape_2d": plane,
        "sharpness": sharpness,
    }
    return {name: pd.DataFrame(rows) for name, rows in frames.items()}


def _manifest(study: str, status: str, stages: dict[str, str], config: dict) -> dict:
    return {
        "study": study,
        "config": {"name": study, "models": [{"spec": "embedded:minilm", "name": "minilm"},
                                             {"spec": "scratch:embedded:minilm",
                                              "name": "minilm-scratch"}], **config},
        "seed": 0, "device": "cpu", "device_name": "x86_64", "torch_threads": 2,
        "versions": {"python": "3.11.7", "probe": "0.1.0"}, "git_commit": "abc1234",
        "created": "2026-01-01T00:00:00", "status": status,
        "stages": {name: {"status": s, "seconds": 1.5} if s == "done" else {"status": s}
                   for name, s in stages.items()},
        "tables": [], "figures": [],
    }  # fmt: skip


def _write_run(
    root: Path, label: str, manifest: dict | str | None, tables: dict[str, pd.DataFrame]
) -> Path:
    folder = root / label
    for sub in ("results", "figures", "checkpoints", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    if isinstance(manifest, dict):
        manifest["tables"] = list(tables)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    elif isinstance(manifest, str):
        (folder / "manifest.json").write_text(manifest)
    for name, frame in tables.items():
        # Built through the pinned schema, as the stages write them: an unknown column fails.
        table = SCHEMAS[name].frame(frame, study=label.split("/")[0])
        write_table(table, folder / "results" / name)
    return folder


def full_tables(shift: float = 0.0) -> dict[str, pd.DataFrame]:
    """Every table a run can have (all four stages)."""
    return {"training": _training_rows(shift), "probe": _probe_rows(shift),
            "probe_summary": _summary_rows(shift), "embeddings": _embeddings_rows(shift),
            **_landscape_tables(shift)}  # fmt: skip


def make_fixture_runs(root: Path) -> Path:
    """Five run folders under ``root``: two complete, one partly finished, two broken."""
    every = {
        "train": {"jobs": []},
        "probe": {"tasks": ["upos"]},
        "embeddings": {"tasks": []},
        "landscape": {"jobs": []},
    }
    done = dict.fromkeys(every, "done")
    _write_run(root, FULL, _manifest("full", "complete", done, every), full_tables(0.0))
    _write_run(root, OLDER, _manifest("full", "complete", done, every), full_tables(0.05))
    _write_run(
        root,
        PARTIAL,
        _manifest(
            "partial",
            "running",
            {"train": "done", "probe": "running"},
            {"train": {"jobs": []}, "probe": {"tasks": ["upos"]}},
        ),
        {"training": _training_rows(0.0)},
    )
    bad = _write_run(root, BAD_MANIFEST, '{"study": "broken", "status": ', {})
    (bad / "results" / "probe.parquet").write_bytes(b"this is not a parquet file")
    _write_run(root, NO_MANIFEST, None, {})
    return root


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_runs(tmp_path_factory.mktemp("runs"))


def test_fixture_tables_have_exactly_the_pinned_columns() -> None:
    for name, frame in full_tables().items():
        assert set(frame.columns) <= set(SCHEMAS[name].names), name
        assert list(SCHEMAS[name].frame(frame, study="s").columns) == list(SCHEMAS[name].names)


# --------------------------------------------------------------------------- probe.runs


def test_listing_finds_every_run_folder_including_broken_ones(runs_dir: Path) -> None:
    labels = [run.label for run in list_runs(runs_dir)]
    assert sorted(labels) == sorted([FULL, OLDER, PARTIAL, BAD_MANIFEST, NO_MANIFEST])
    by = {run.label: run for run in list_runs(runs_dir)}
    assert by[FULL].done == ("train", "probe", "embeddings", "landscape") and not by[FULL].missing
    assert by[PARTIAL].missing == ("probe",) and by[PARTIAL].missing_tables == ("probe",)
    assert "running" in by[PARTIAL].stage_note("probe")
    assert "not valid JSON" in by[BAD_MANIFEST].error
    assert "missing" in by[NO_MANIFEST].error
    # Pointing at a study folder or at one run finds the same runs.
    assert find_run_dirs(runs_dir / "full") == [runs_dir / FULL, runs_dir / OLDER]
    assert find_run_dirs(runs_dir / FULL) == [runs_dir / FULL]
    assert open_run(runs_dir / FULL).tables == tuple(sorted(full_tables()))


def test_a_running_run_whose_process_died_is_listed_as_stopped(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process
    for name, pid in (("alive", os.getpid()), ("dead", dead.pid)):
        folder = tmp_path / name / "20260101-000000"
        folder.mkdir(parents=True)
        manifest = {"study": name, "status": "running", "host": socket.gethostname(), "pid": pid}
        (folder / "manifest.json").write_text(json.dumps(manifest))
    status = {run.study: run.status for run in list_runs(tmp_path)}
    assert status == {"alive": "running", "dead": "stopped"}


def test_listing_cache_key_changes_when_a_stage_writes_a_table(tmp_path: Path) -> None:
    run = _write_run(
        tmp_path,
        "s/20260101-000000",
        _manifest("s", "running", {"train": "running"}, {"train": {}}),
        {},
    )
    before = run_signature(tmp_path)
    time.sleep(0.01)
    write_table(
        SCHEMAS["training"].frame(_training_rows(0.0), study="s"), run / "results" / "training"
    )
    os.utime(run / "results", (time.time() + 5, time.time() + 5))  # coarse-mtime filesystems
    assert run_signature(tmp_path) != before


# --------------------------------------------------------------------------- AppTest pages


def _app(runs_dir: Path, selected: list[str] | None = None, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    # The app reads its default runs directory from the environment (as `streamlit run` would).
    previous = os.environ.get("PROBE_RUNS_DIR")
    os.environ["PROBE_RUNS_DIR"] = str(runs_dir)
    try:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if selected is not None:
            at.session_state["selected_runs"] = selected
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


def _texts(at) -> str:
    parts = [
        e.value
        for kind in (
            "markdown",
            "caption",
            "info",
            "warning",
            "error",
            "title",
            "header",
            "subheader",
        )
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def _charts(at) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_runs_page_lists_runs_and_explains_broken_ones(runs_dir: Path) -> None:
    at = _app(runs_dir)
    listed = at.dataframe[0].value
    assert sorted(listed["run"]) == sorted([FULL, OLDER, PARTIAL, BAD_MANIFEST, NO_MANIFEST])
    row = listed.set_index("run").loc[PARTIAL]
    assert row["status"] == "running" and row["stages"] == "train ✓ · probe ✗ running"
    text = _texts(at)
    assert f"{BAD_MANIFEST}** cannot be read" in text and "not valid JSON" in text
    assert "5 of 5 run folders" in text
    # The newest finished run is preselected, not the newer one still running.
    assert at.sidebar.multiselect[0].value == [FULL]
    # Filters narrow the list.
    at.multiselect(key="f_study").set_value(["full"]).run()
    assert sorted(at.dataframe[0].value["run"]) == [OLDER, FULL]
    at.multiselect(key="f_study").set_value([]).run()
    at.multiselect(key="f_stage").set_value(["probe"]).run()
    assert sorted(at.dataframe[0].value["run"]) == [OLDER, FULL]


def test_runs_page_on_missing_or_empty_folder_says_so(tmp_path: Path) -> None:
    assert "does not exist" in _texts(_app(tmp_path / "nowhere"))
    assert "No run folders" in _texts(_app(tmp_path))


@pytest.mark.parametrize(
    ("page", "n_charts", "needle"),
    [
        ("views/probing.py", 2, "upos: probe accuracy by layer"),
        ("views/summary.py", 3, "Scalar-mix weights"),
        ("views/training.py", 2, "Training: SST-2 fine-tuning"),
        ("views/embeddings.py", 3, "STS-B test"),
        ("views/landscape.py", 2, "1-D interpolation"),  # one section drawn at a time
    ],
)
def test_each_figure_page_draws_the_registry_figures(
    runs_dir: Path, page: str, n_charts: int, needle: str
) -> None:
    at = _app(runs_dir, [FULL], page)
    charts = _charts(at)
    assert len(charts) == n_charts
    titles = " ".join(str(c["layout"].get("title", {}).get("text", "")) for c in charts)
    assert needle in titles
    # The house style survives (theme=None): Okabe-Ito colours, not Streamlit's theme.
    assert charts[0]["layout"]["colorway"][0] == "#0072B2"
    assert len(at.get("download_button")) >= 3 * n_charts


def test_probe_page_switches_to_the_dev_split(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL], "views/probing.py")
    at.radio(key="probe_split").set_value("dev").run()
    titles = [c["layout"]["title"]["text"] for c in _charts(at)]
    assert titles == [
        "upos: probe accuracy by layer (dev)",
        "ner_conll2003: probe macro-F1 by layer (dev)",  # the headline metric of NER
    ]


def test_details_page_shows_manifest_timings_and_tables(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL, BAD_MANIFEST], "views/details.py")
    frames = [d.value for d in at.dataframe]
    stages = next(f for f in frames if "stage" in f)
    assert list(stages["status"]) == ["done"] * 4 and list(stages["seconds"]) == [1.5] * 4
    tables = next(f for f in frames if "table" in f and "rows" in f and len(f) > 1)
    assert set(tables["table"]) == set(full_tables())
    broken = next(f for f in frames if "table" in f and list(f["table"]) == ["probe"])
    assert "cannot be read" in broken["problem"].iloc[0]
    assert "The manifest cannot be read" in _texts(at)


def test_two_runs_are_drawn_on_one_chart_labelled_by_run(runs_dir: Path) -> None:
    at = _app(runs_dir, [FULL, OLDER], "views/probing.py")
    names = {t.get("name") for c in _charts(at) for t in c["data"]}
    # Runs of one study are told apart by their timestamp folder.
    full, older = FULL.split("/")[1], OLDER.split("/")[1]
    assert {f"{full} · minilm", f"{older} · minilm", f"{older} · minilm-scratch"} <= names
    # Runs of different studies by their whole label.
    at = _app(runs_dir, [FULL, PARTIAL], "views/training.py")
    names = {t.get("name") for c in _charts(at) for t in c["data"]}
    assert {f"{FULL} · pretrained", f"{PARTIAL} · scratch"} <= names


def test_partly_finished_run_says_what_is_missing(runs_dir: Path) -> None:
    at = _app(runs_dir, [PARTIAL], "views/probing.py")
    text = _texts(at)
    assert f"{PARTIAL}** has no `probe` table: the probe stage is running" in text
    assert not _charts(at)
    # Its finished stage still draws.
    assert len(_charts(_app(runs_dir, [PARTIAL], "views/training.py"))) == 2


def test_finished_run_without_an_optional_table_says_which_setting_gives_it(
    tmp_path: Path,
) -> None:
    _write_run(
        tmp_path,
        "pos/20260101-000000",
        _manifest("pos", "complete", {"probe": "done"}, {"probe": {"tasks": ["upos"]}}),
        {"probe": SCHEMAS["probe"].frame(_probe_rows(0.0), study="pos")},
    )
    text = _texts(_app(tmp_path, ["pos/20260101-000000"], "views/summary.py"))
    assert "did not ask for this table (set `probe.mix: true`)" in text and "yet" not in text


def test_unreadable_table_gives_a_readable_error(runs_dir: Path) -> None:
    at = _app(runs_dir, [BAD_MANIFEST, FULL], "views/probing.py")
    text = _texts(at)
    assert "probe.parquet cannot be read" in text
    assert len(_charts(at)) == 2  # the good run is still drawn


# --------------------------------------------------------------------------- real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class DevTools:
    """The few Chrome DevTools protocol calls the test needs, over ``websockets`` (sync)."""

    def __init__(self, ws: object) -> None:
        self._ws = ws  # a websockets.sync.client connection
        self._id = 0

    def call(self, method: str, **params: object) -> dict:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''")
                raise TimeoutError(f"{expression!r} not true after {timeout} s; page: {text!r}")
            time.sleep(0.25)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


@contextlib.contextmanager
def served_dashboard(runs_dir: Path, tmp: Path):
    """``streamlit run dashboard/app.py`` on a free port; yields its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "PROBE_RUNS_DIR": str(runs_dir),
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    log = (tmp / "streamlit.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextlib.contextmanager
def headless_chromium(tmp: Path, width: int = 1400, height: int = 1000):
    """Headless Chromium with a DevTools port; yields a :class:`DevTools` on a blank page."""
    port = _free_port()
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from websockets.sync.client import connect

        targets = json.loads(_wait_http(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(t for t in targets if t.get("type") == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            devtools = DevTools(ws)
            devtools.call("Page.enable")
            devtools.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield devtools
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()


def _distinct_colours(png: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").resize((200, 150))
    return len(image.getcolors(maxcolors=200 * 150) or [])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_dashboard_renders_the_run_list_in_a_real_browser(runs_dir: Path, tmp_path: Path) -> None:
    with served_dashboard(runs_dir, tmp_path) as url, headless_chromium(tmp_path) as browser:
        browser.call("Page.navigate", url=url)
        # The run list is drawn once the caption under the filters and the data grid are there.
        browser.wait_for(
            "document.body.innerText.includes('5 of 5 run folders') && "
            "!!document.querySelector('[data-testid=\"stDataFrame\"] canvas')",
            timeout=40,
        )
        time.sleep(1.0)  # let the grid paint its cells
        text = browser.evaluate("document.body.innerText")
        png = browser.screenshot()
        # A deep link opens a figure page of the chosen run in a fresh session, and plotly draws.
        browser.call("Page.navigate", url=f"{url}/probing?run={FULL}")
        browser.wait_for(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=40
        )
        probing = browser.evaluate("document.body.innerText")
    (tmp_path / "runs_page.png").write_bytes(png)
    assert "Runs" in text and "cannot be read" in text
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _distinct_colours(png) > 20, "screenshot is blank"
    assert "Layer-wise probe curves" in probing
