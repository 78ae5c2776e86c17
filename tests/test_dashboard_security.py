"""The dashboard reads only its configured runs directory and shows run-folder strings literally.

A link (``?runs_dir=``) or the sidebar cannot point it at another folder of the server, and a
study, model or error text like ``![x](http://host/p.png)`` is shown as text, never rendered as
an image the viewer's browser would fetch.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

APP = REPO / "dashboard" / "app.py"
IMAGE = "![x](http://attacker.example/p.png)"
TEXT_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "title", "header", "subheader")


def _run_folder(root: Path, label: str, study: str, *, models=("minilm",), error=None) -> Path:
    folder = root / label
    for sub in ("results", "figures", "checkpoints", "logs"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    manifest = {
        "study": study,
        "config": {
            "name": study,
            "models": [{"spec": "embedded:minilm", "name": m} for m in models],
            "probe": {"tasks": ["upos"]},
        },
        "seed": 0, "device": "cpu", "device_name": IMAGE, "git_commit": IMAGE,
        "created": "2026-01-01T00:00:00", "status": "running" if error is None else error,
        "stages": {"probe": {"status": "running"}}, "tables": [], "figures": [],
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "study.yaml").write_text(f"name: {study}\n")
    return folder


def _app(root: Path, *, query: dict[str, str] | None = None, selected=None, page=None):
    from streamlit.testing.v1 import AppTest

    previous = os.environ.get("PROBE_RUNS_DIR")
    os.environ["PROBE_RUNS_DIR"] = str(root)
    try:
        at = AppTest.from_file(str(APP), default_timeout=60)
        for key, value in (query or {}).items():
            at.query_params[key] = value
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


def _texts(at) -> list[str]:
    texts = [str(e.value) for kind in TEXT_ELEMENTS for e in getattr(at, kind)]
    texts += [str(e.value) for kind in TEXT_ELEMENTS for e in getattr(at.sidebar, kind)]
    return texts


def _listed(at) -> list[str]:
    return sorted(at.dataframe[0].value["run"]) if at.dataframe else []


@pytest.fixture
def two_roots(tmp_path: Path) -> tuple[Path, Path]:
    mine, other = tmp_path / "runs", tmp_path / "private"
    _run_folder(mine, "pos/20260101-000000", "pos")
    _run_folder(other, "secret/20260101-000000", "secret_study")
    return mine, other


def test_a_link_cannot_point_the_dashboard_at_another_folder(two_roots) -> None:
    mine, other = two_roots
    at = _app(mine, query={"runs_dir": str(other), "run": "secret/20260101-000000"})
    assert _listed(at) == ["pos/20260101-000000"]
    assert at.sidebar.multiselect[0].value != ["secret/20260101-000000"]
    texts = "\n".join(_texts(at))
    assert "secret_study" not in texts and "ignored" in texts
    # A run named in a link is echoed literally, never rendered.
    at = _app(mine, query={"run": IMAGE})
    assert any("attacker.example" in t for t in _texts(at))
    assert not any("[x](" in re.sub(r"(`+).*?\1", "", t) for t in _texts(at))
    # The same link's `run=` still selects a run of the configured directory.
    at = _app(mine, query={"runs_dir": str(other), "run": "pos/20260101-000000"})
    assert at.sidebar.multiselect[0].value == ["pos/20260101-000000"]


def test_the_sidebar_cannot_leave_the_configured_folder(two_roots) -> None:
    mine, other = two_roots
    at = _app(mine)
    at.sidebar.text_input[0].set_value(str(other)).run()
    assert _listed(at) == ["pos/20260101-000000"]
    assert any("outside the configured runs directory" in t for t in _texts(at))
    at.sidebar.text_input[0].set_value(str(mine / "pos")).run()  # a folder inside it is fine
    assert _listed(at) == ["20260101-000000"]


def test_strings_from_run_folders_are_never_rendered_as_markdown(tmp_path: Path) -> None:
    _run_folder(tmp_path, "evil/20260101-000000", IMAGE, models=(IMAGE, "b`c**d"))
    _run_folder(tmp_path, "evil/20260102-000000", IMAGE, error=f"failed {IMAGE}")
    (tmp_path / "broken" / "20260101-000000").mkdir(parents=True)
    (tmp_path / "broken" / "20260101-000000" / "manifest.json").write_text(IMAGE)
    labels = ["evil/20260101-000000", "evil/20260102-000000"]
    pages = [None, "views/details.py", "views/probing.py"]
    texts = [t for page in pages for t in _texts(_app(tmp_path, selected=labels, page=page))]
    assert any("attacker.example" in t for t in texts)  # the names are shown ...
    for text in texts:
        # Code spans show their content literally; an escaped backtick opens none.
        outside_code = re.sub(r"(?<![\\`])(`+)(?!`).*?(?<!`)\1(?!`)", "", text)
        assert "[x](" not in outside_code.replace("\\[x\\](", ""), text
    help_texts = [m.proto.help for m in _app(tmp_path, selected=labels, page=pages[1]).metric]
    assert all("![x](" not in h for h in help_texts)


def test_streamlit_listens_on_localhost_by_default() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] in ("localhost", "127.0.0.1")
