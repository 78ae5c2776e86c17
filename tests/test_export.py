"""``probe export`` and the figure registry: every figure of a run, rebuilt in the paper style."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from probe.cli import main
from probe.export import ExportError, build_figures, export_run, figures_for_run, parse_formats
from probe.figures.embeddings import embeddings_figures
from probe.figures.landscape import landscape_figures
from probe.figures.probing import layerwise_figures
from probe.figures.style import PALETTE, pt
from probe.figures.training import training_figures
from tests.conftest import run_cli
from tests.test_dashboard import (
    FULL,
    NO_MANIFEST,
    PARTIAL,
    _manifest,
    _probe_rows,
    _summary_rows,
    _write_run,
    full_tables,
    make_fixture_runs,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_runs(tmp_path_factory.mktemp("runs"))


def assert_one_line_exit_2(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str], *needles: str
) -> None:
    """``probe ARGS`` (in-process: the same entry point as the command) fails on one line."""
    monkeypatch.setattr(sys, "argv", ["probe", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_registry_draws_every_figure_the_stages_draw() -> None:
    tables = full_tables()
    stage_figures = {
        *layerwise_figures(tables["probe"]),
        *training_figures(tables["training"]),
        *embeddings_figures(tables["embeddings"]),
        *landscape_figures(
            trajectory=tables["landscape_trajectory"],
            line=tables["landscape_1d"],
            plane=tables["landscape_2d"],
            sharpness=tables["sharpness"],
        ),
        "pipeline",
    }
    names = set(build_figures(tables))
    assert stage_figures <= names
    # Beyond the stages' own figures, one scalar-mix heat map per model.
    assert names - stage_figures == {"mix_weights_minilm", "mix_weights_minilm-scratch"}


def test_paper_figures_use_column_widths_serif_fonts_and_okabe_ito(runs_dir: Path) -> None:
    figures = figures_for_run(runs_dir / FULL, style="paper")
    assert len(figures) == 16
    for name, figure in figures.items():
        layout = figure.layout
        assert layout.width in (336, 687), name  # 3.5 in and 7.16 in at 96 px/in
        # 9 pt at the printed size: 12 CSS px (export writes 0.75 pt per px).
        assert "serif" in layout.font.family and layout.font.size == pt(9) == 12, name
        assert tuple(layout.colorway) == PALETTE, name


def test_partly_finished_run_exports_what_it_has_and_says_what_is_missing(
    runs_dir: Path, tmp_path: Path
) -> None:
    result = export_run(runs_dir / PARTIAL, formats="html", out=tmp_path)
    assert result.figures == ["training_sst2"]
    assert (tmp_path / "training_sst2.html").is_file()
    assert set(result.skipped) == {"probe"}  # no `probe.mix`: no summary was asked for
    assert "probe stage is running" in result.skipped["probe"]


def test_finished_stage_without_an_optional_table_is_not_reported(tmp_path: Path) -> None:
    # A probe study without `mix: true` writes no probe_summary: nothing is missing.
    run = _write_run(
        tmp_path,
        "pos/20260101-000000",
        _manifest("pos", "complete", {"probe": "done"}, {"probe": {}}),
        {"probe": _probe_rows(0.0)},
    )
    result = export_run(run, formats="html", out=tmp_path / "out")
    assert result.skipped == {}
    assert result.figures == ["layerwise_upos", "layerwise_ner_conll2003"]


def test_run_without_tables_has_nothing_to_export(runs_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="nothing to export"):
        export_run(runs_dir / NO_MANIFEST, formats="svg", out=tmp_path)


def test_formats_are_checked_with_a_suggestion() -> None:
    assert parse_formats("PDF, svg,.png,svg") == ("pdf", "svg", "png")
    with pytest.raises(ExportError, match="did you mean 'svg'"):
        parse_formats("pdf,svgg")


def test_bad_run_path_is_one_line_and_exit_code_2(
    runs_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check(args: list[str], *needles: str) -> None:
        assert_one_line_exit_2(capsys, monkeypatch, ["export", *args], *needles)

    check([str(tmp_path / "nope")], "does not exist")
    check([str(runs_dir)], "is not a run folder", "it holds 5 run folder(s)")
    (tmp_path / "file.txt").write_text("x")
    check([str(tmp_path / "file.txt")], "is a file")
    check([str(runs_dir / FULL), "--format", "jpg"], "unknown format 'jpg'")
    check([str(runs_dir / FULL), "--style", "papr"], "did you mean 'paper'")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_export_writes_pdf_and_svg_of_every_figure(tmp_path: Path) -> None:
    # A probe run (curves + summary): five figures, ten files in one kaleido call.
    run = _write_run(
        tmp_path,
        "pipeline/20260101-000000",
        _manifest("pipeline", "complete", {"probe": "done"}, {"probe": {}}),
        {"probe": _probe_rows(0.0), "probe_summary": _summary_rows(0.0)},
    )
    result = run_cli("export", str(run), "--format", "pdf,svg")
    assert result.returncode == 0, result.stderr
    folder = run / "figures" / "paper"
    expected = {
        "layerwise_upos",
        "layerwise_ner_conll2003",
        "pipeline",
        "mix_weights_minilm",
        "mix_weights_minilm-scratch",
    }
    assert {p.name for p in folder.iterdir()} == {
        f"{name}.{fmt}" for name in expected for fmt in ("pdf", "svg")
    }
    for name in expected:
        assert (folder / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
        svg = (folder / f"{name}.svg").read_text()
        assert "<svg" in svg[:500] and "Times New Roman" in svg


def test_checkpoints_of_a_training_run_get_an_emergence_figure() -> None:
    import pandas as pd

    from probe.figures.probing import layerwise_figures

    rows = []
    for step in ("0", "100", "1000"):
        for layer in (0, 1):
            for metric, value in (("accuracy", 0.6 + int(step) / 1e4), ("selectivity", 0.1)):
                rows.append(
                    {"model": f"step-{step}", "checkpoint": step, "task": "upos", "layer": layer,
                     "split": "test", "probe": "linear", "control": "task", "metric": metric,
                     "value": value + 0.01 * layer}
                )  # fmt: skip
    table = pd.DataFrame(rows)
    figures = layerwise_figures(table)
    assert list(figures) == ["layerwise_upos", "emergence_upos"]
    accuracy = [t for t in figures["emergence_upos"].data if t.xaxis == "x"]
    assert [t.name for t in accuracy] == ["layer 0", "layer 1"]
    assert list(accuracy[1].x) == [0, 100, 1000]
    assert list(accuracy[1].y) == pytest.approx([61.0, 62.0, 71.0])
    # Models that are not checkpoints of one run (no step) get no such figure.
    assert list(layerwise_figures(table.assign(checkpoint=None))) == ["layerwise_upos"]
