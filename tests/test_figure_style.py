"""Figures at their printed size, one colour per series, and what each figure says.

The static-export tests measure the files themselves: a PDF's page box, an SVG's width/height and
font sizes, a PNG's pixels and dpi. They need Chromium (kaleido drives it) and skip without it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probe.figures.embeddings import embeddings_figures
from probe.figures.export import figure_size, write_figures
from probe.figures.groups import build_figures
from probe.figures.landscape import contour_figure, sharpness_figure, surface_figure
from probe.figures.pipeline import mix_weights_heatmap, task_order
from probe.figures.probing import headline_metric, layerwise_figures
from probe.figures.style import PALETTE, color_for, series_colors
from probe.figures.training import training_curves
from probe.runs import combine_runs
from tests.test_dashboard import _summary_rows, full_tables

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
SINGLE_PT, DOUBLE_PT = 3.5 * 72, 7.16 * 72


# --------------------------------------------------------------------------- colours


def test_series_colours_never_repeat_and_keep_given_ones() -> None:
    colours = [color_for(i) for i in range(40)]
    assert colours[:7] == [c for c in PALETTE if c != "#F0E442"]  # yellow is too pale first
    assert len(set(colours)) == 40
    mapping = series_colors([f"s{i}" for i in range(12)], {"s3": PALETTE[0]})
    assert mapping["s3"] == PALETTE[0] and mapping["s0"] != PALETTE[0]
    assert len(set(mapping.values())) == 12


def _trace_colours(figure) -> dict[str, set[str]]:
    """Series name -> colours its traces are drawn in (lines and markers)."""
    out: dict[str, set[str]] = {}
    for trace in figure.data:
        name = trace.legendgroup or trace.name
        line = getattr(trace, "line", None)
        colour = line.color if line is not None and line.color else None
        marker = getattr(trace, "marker", None)
        if colour is None and marker is not None and isinstance(marker.color, str):
            colour = marker.color
        if name and colour and colour.startswith("#") and colour != "#888888":
            out.setdefault(str(name), set()).add(colour)
    return out


def test_a_series_keeps_its_colour_in_every_figure_of_two_runs() -> None:
    # Two runs; the second lacks the scratch model on NER, which used to shift every colour of
    # the NER figure by one.
    tables = full_tables(0.0), full_tables(0.05)
    second = tables[1]["probe"]
    second = second[~((second.task == "ner_conll2003") & (second.model == "minilm-scratch"))]
    probe = combine_runs({"run-a": tables[0]["probe"], "run-b": second})
    figures = layerwise_figures(probe)
    seen: dict[str, set[str]] = {}
    for figure in figures.values():
        for name, colours in _trace_colours(figure).items():
            seen.setdefault(name, set()).update(colours)
    assert all(len(colours) == 1 for colours in seen.values()), seen
    assert len({next(iter(c)) for c in seen.values()}) == len(seen)  # distinct series, colours


def test_given_colours_hold_across_figure_groups() -> None:
    colors = {"minilm": "#111111", "minilm-scratch": "#222222", "pretrained": "#333333",
              "scratch": "#444444"}  # fmt: skip
    figures = build_figures(full_tables(), "screen", colors=colors)
    for name, figure in figures.items():
        for series, colours in _trace_colours(figure).items():
            if series in colors:
                assert colours == {colors[series]}, (name, series, colours)


# --------------------------------------------------------------------------- figure content


def test_probe_figures_draw_each_tasks_headline_metric() -> None:
    probe = full_tables()["probe"]
    assert headline_metric(probe, "upos") == "accuracy"
    assert headline_metric(probe, "ner_conll2003") == "macro_f1"
    figures = layerwise_figures(probe)
    assert figures["layerwise_ner_conll2003"].layout.title.text.startswith(
        "ner_conll2003: probe macro-F1"
    )
    ner = next(t for t in figures["layerwise_ner_conll2003"].data if t.name == "minilm")
    expected = probe[(probe.task == "ner_conll2003") & (probe.metric == "macro_f1")
                     & (probe.model == "minilm") & (probe.split == "test")]  # fmt: skip
    assert list(ner.y) == pytest.approx(list(100 * expected.sort_values("layer").value))
    # Asking for accuracy draws accuracy (with the control task) where a task has it.
    chosen = layerwise_figures(probe, metric="accuracy")["layerwise_ner_conll2003"]
    assert "accuracy" in chosen.layout.title.text
    assert any("(control)" in (t.name or "") for t in chosen.data)


def test_pca_axis_titles_use_each_runs_own_explained_variance() -> None:
    plane = full_tables()["landscape_2d"]
    plane = plane.assign(
        pc1_variance=np.where(plane.model == "pretrained", 0.91, 0.84),
        pc2_variance=np.where(plane.model == "pretrained", 0.05, 0.11),
    )
    figure = contour_figure(plane, "pca")
    titles = [figure.layout[f"xaxis{'' if i == 1 else i}"].title.text for i in range(1, 5)]
    assert "PC 1 (91% of variance)" in titles and "PC 1 (84% of variance)" in titles
    y_titles = [figure.layout[f"yaxis{'' if i == 1 else i}"].title.text for i in range(1, 5)]
    assert "PC 2 (5%)" in y_titles and "PC 2 (11%)" in y_titles


def test_sharpness_legend_lists_every_split_and_axes_have_titles() -> None:
    figure = sharpness_figure(full_tables()["sharpness"])
    legend = {t.name for t in figure.data if t.showlegend is not False}
    assert legend == {"train split", "dev split"}
    assert figure.layout.yaxis.title.text == "λmax"
    assert figure.layout.yaxis2.title.text == "loss increase"
    assert figure.layout.yaxis.exponentformat == "power"  # 1.5×10⁻⁴, not "150μ"


def test_summary_heat_maps_share_task_order_and_colour_scale() -> None:
    summary = pd.concat(
        [_summary_rows(0.0), _summary_rows(0.0).assign(model="other", value=lambda f: f.value / 2)]
    )
    maps = [mix_weights_heatmap(summary, model) for model in ("minilm", "other")]
    assert [list(m.data[0].y) for m in maps] == [task_order(summary)] * 2
    assert {(m.data[0].zmin, m.data[0].zmax) for m in maps} == {(0.0, 0.5)}


def test_nsp_accuracy_axis_shows_chance_on_a_sane_range() -> None:
    steps = range(0, 250, 50)
    rows = [
        {
            "model": "tiny",
            "task": "mlm_nsp",
            "split": "dev",
            "metric": "nsp_accuracy",
            "step": s,
            "value": 0.5 + (0.008 if i % 2 else -0.008),
        }
        for i, s in enumerate(steps)
    ]
    rows.append({"model": "tiny", "task": "mlm_nsp", "split": "dev",
                 "metric": "nsp_majority_accuracy", "step": None, "value": 0.5})  # fmt: skip
    figure = training_curves(pd.DataFrame(rows), title="x")
    low, high = figure.layout.yaxis3.range
    assert low <= 0.45 and high >= 0.55 and high - low >= 0.2 - 1e-9
    assert any("chance" in (t.name or "") for t in figure.data)
    assert figure.layout.legend.orientation == "h"  # below the panels, not squeezing them


def test_embeddings_figure_is_a_zoomed_heat_map_of_pooling_by_whitening() -> None:
    table = full_tables()["embeddings"]
    figure = embeddings_figures(table, metric="spearman")["embeddings_sts_stsb"]
    heat = [t for t in figure.data if t.type == "heatmap"]
    assert len(heat) == 2  # one panel per model
    scores = table[(table.metric == "spearman") & (table.split == "test") & (table.task == "stsb")]
    axis = figure.layout.coloraxis
    assert axis.cmin == pytest.approx(scores.value.min()) and axis.cmax > axis.cmin > 0
    assert all(t.texttemplate for t in heat)  # every cell prints its number


def test_3d_scenes_leave_room_for_their_labels() -> None:
    figure = surface_figure(full_tables()["landscape_2d"], "random")
    for name in ("scene", "scene2"):
        x0, x1 = figure.layout[name].domain.x
        assert x0 >= 0.04 and x1 <= 0.99
    assert figure.layout.scene.zaxis.ticktext  # loss values, not bare exponents


# --------------------------------------------------------------------------- real size


def _svg_size_pt(svg: str) -> tuple[float, float, float]:
    """(width pt, height pt, points per viewBox unit) of an SVG written by write_figures."""
    root = re.search(r"<svg\b[^>]*>", svg)[0]
    width = float(re.search(r'width="([\d.]+)pt"', root)[1])
    height = float(re.search(r'height="([\d.]+)pt"', root)[1])
    view = float(re.search(r'viewBox="0 0 ([\d.]+) ', root)[1])
    return width, height, width / view


def _pdf_box(pdf: bytes) -> tuple[float, float]:
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    return float(box[1]), float(box[2])


@needs_chromium
def test_paper_export_has_the_column_width_and_9pt_text_at_that_size(tmp_path: Path) -> None:
    from PIL import Image

    figures = build_figures(full_tables(), "paper")
    paths = write_figures(figures, tmp_path, ["pdf", "svg", "png"], scale=300 / 96)
    assert len(paths) == 3 * len(figures)
    widths = set()
    for name, figure in figures.items():
        pdf_w, pdf_h = _pdf_box((tmp_path / f"{name}.pdf").read_bytes())
        svg = (tmp_path / f"{name}.svg").read_text()
        svg_w, svg_h, per_unit = _svg_size_pt(svg)
        expected_w, expected_h = (0.75 * v for v in figure_size(figure))
        # Chromium rounds PDF pages to its device grid: within 1 pt of the layout; SVG exact.
        assert abs(pdf_w - expected_w) < 1.0 and abs(pdf_h - expected_h) < 1.0, name
        assert (svg_w, svg_h) == pytest.approx((expected_w, expected_h)), name
        assert min(abs(pdf_w - SINGLE_PT), abs(pdf_w - DOUBLE_PT)) < 1.0, (name, pdf_w)
        widths.add(round(pdf_w))
        sizes = [per_unit * float(s) for s in re.findall(r"font-size: ?([\d.]+)px", svg)]
        assert sizes and min(sizes) >= 7.9, (name, min(sizes))  # nothing below 8 pt
        assert not re.search(r"font-size: ?[1-9]\d?%", svg), name  # no shrunk <sup>/<sub>
        # Axis titles and other body text are 9 pt on the printed page.
        titles = re.findall(r'class="[xy]title"[^>]*font-size: ?([\d.]+)px', svg)
        for size in titles:
            assert per_unit * float(size) == pytest.approx(9.0, abs=0.05), name
        png = Image.open(tmp_path / f"{name}.png")
        assert png.size[0] == pytest.approx(figure_size(figure)[0] * 300 / 96, abs=1)
        assert png.info["dpi"][0] == pytest.approx(300, abs=0.5)
    assert widths == {252, 515}  # single and double column figures both occur


@needs_chromium
def test_a_batch_keeps_each_figures_own_size(tmp_path: Path) -> None:
    import plotly.graph_objects as go

    small = go.Figure(layout={"width": 336, "height": 200})
    large = go.Figure(layout={"width": 687, "height": 600})
    write_figures({"small": small, "large": large}, tmp_path, ["pdf"])
    assert _pdf_box((tmp_path / "small.pdf").read_bytes())[0] == pytest.approx(252, abs=0.5)
    assert _pdf_box((tmp_path / "large.pdf").read_bytes()) == pytest.approx((515.25, 450), abs=0.5)


def test_a_screen_legend_of_many_entries_goes_below_the_plot_and_a_short_one_stays() -> None:
    import plotly.graph_objects as go

    from probe.figures.style import apply_style

    def figure(n: int) -> go.Figure:
        fig = go.Figure([go.Scatter(x=[0], y=[i], name=f"arm {i}") for i in range(n)])
        # a second trace of an arm in its legend group adds no entry
        fig.add_trace(go.Scatter(x=[1], y=[0], name="arm 0", legendgroup="g"))
        fig.add_trace(go.Scatter(x=[1], y=[1], name="arm 0 seeds", legendgroup="g"))
        return apply_style(fig, style="screen")

    short, long = figure(9), figure(15)  # 10 and 16 entries
    assert short.layout.legend.orientation is None and short.layout.height is None
    assert long.layout.legend.orientation == "h" and long.layout.legend.y < 0
    assert long.layout.height > 450  # room for the rows below the plot
