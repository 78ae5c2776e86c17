"""Structural-probe figures, from ``results/structural`` and ``results/structural_example`` only.

* ``structural``: UUAS and DSpr. (distance probe), root accuracy and NSpr. (depth probe) by
  layer, one line per model, the linear-structure baseline (each word linked to the next) dashed;
* ``structural_tree_<model>``: one sentence with its gold tree drawn above the words and the
  tree the distance probe predicts (best layer by UUAS) below them; predicted arcs that are in
  the gold tree are drawn in the first palette colour, wrong ones in the second.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import PALETTE, apply_style, color_for

__all__ = ["structural_figures", "structural_metrics_figure", "structural_tree_figure"]

_PANELS = (
    ("distance", "uuas", "UUAS (%)"),
    ("distance", "dspr", "DSpr."),
    ("depth", "root_accuracy", "root accuracy (%)"),
    ("depth", "nspr", "NSpr."),
)
_PERCENT = {"uuas", "root_accuracy"}
# y runs from -1 to 1: arcs start _TEXT_GAP off the text line (clear of the words at any
# sentence length) and the widest arc reaches 1; height grows with the square root of the span
# so that arcs between neighbours are not flat against the words.
_TEXT_GAP = 0.14


def structural_metrics_figure(
    table: pd.DataFrame, *, split: str = "test", style: Literal["screen", "paper"] = "screen"
) -> go.Figure:
    """The four metrics of Hewitt & Manning (2019) by layer, one line per model (seed means)."""
    fig = make_subplots(
        rows=2, cols=2, subplot_titles=[title for _, _, title in _PANELS],
        horizontal_spacing=0.1, vertical_spacing=0.14,
    )  # fmt: skip
    data = table[table.split == split]
    probe_rows = data[data.probe == "structural"]
    layers = probe_rows.layer.dropna().astype(int)
    for index, model in enumerate(probe_rows.model.drop_duplicates()):
        for panel, (task, metric, _) in enumerate(_PANELS):
            rows = probe_rows[
                (probe_rows.model == model) & (probe_rows.task == task)
                & (probe_rows.metric == metric)
            ]  # fmt: skip
            line = rows.groupby("layer", as_index=False).value.mean().sort_values("layer")
            if line.empty:
                continue
            scale = 100 if metric in _PERCENT else 1
            fig.add_trace(
                go.Scatter(
                    x=line.layer.astype(int),
                    y=scale * line.value,
                    name=str(model),
                    mode="lines+markers",
                    line={"color": color_for(index)},
                    legendgroup=str(model),
                    showlegend=panel == 0,
                ),
                row=panel // 2 + 1,
                col=panel % 2 + 1,
            )
    baseline = data[data.probe == "linear"]
    shown = False
    for panel, (task, metric, _) in enumerate(_PANELS):
        value = baseline[(baseline.task == task) & (baseline.metric == metric)].value
        if value.empty or layers.empty:
            continue
        scale = 100 if metric in _PERCENT else 1
        # A trace, not add_hline: shapes do not count for autorange.
        fig.add_trace(
            go.Scatter(
                x=[layers.min(), layers.max()],
                y=[scale * value.mean()] * 2,
                name="linear structure",
                mode="lines",
                line={"dash": "dash", "color": "#888888"},
                legendgroup="linear",
                showlegend=not shown,
            ),
            row=panel // 2 + 1,
            col=panel % 2 + 1,
        )
        shown = True
    fig.update_layout(title=f"structural probes by layer ({split})")
    fig.update_annotations(yshift=4)  # subplot titles clear of the figure title
    fig.update_xaxes(dtick=1)
    fig.update_xaxes(title_text="layer", row=2)
    fig = apply_style(fig, style=style, column="double", height=560 if style == "screen" else None)
    if style == "screen":  # room between the figure title and the first row's panel titles
        fig.update_layout(margin={"t": 90})
    return fig


def _arc(
    x0: float, x1: float, above: bool, widest: float, points: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """A half-ellipse from x0 to x1 just off the text line; ``widest`` is the largest half-span."""
    t = np.linspace(0.0, np.pi, points)
    centre, radius = (x0 + x1) / 2, abs(x1 - x0) / 2
    sign = 1.0 if above else -1.0
    height = (1.0 - _TEXT_GAP) * np.sqrt(radius / max(widest, 1e-9))
    return centre - radius * np.cos(t), sign * (_TEXT_GAP + height * np.sin(t))


def _word_positions(words: list[str]) -> np.ndarray:
    """Centre of each word on a line where a word takes its length in characters plus a gap."""
    widths = np.array([max(len(w), 1) + 2.0 for w in words])
    return np.cumsum(widths) - widths / 2


def structural_tree_figure(
    example: pd.DataFrame,
    model: str,
    layer: int,
    *,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Gold tree (above the words) and the distance probe's tree at ``layer`` (below)."""
    rows = example[example.model == model]
    words = rows[rows.metric == "word"].sort_values("i")
    gold = rows[rows.metric == "gold_arc"]
    pred = rows[(rows.metric == "predicted_arc") & (rows.layer == layer)]
    gold_edges = {(int(a), int(b)) for a, b in zip(gold.i, gold.j, strict=True)}
    x_of = _word_positions([str(w) for w in words.word])
    arcs = [(int(i), int(j)) for i, j in gold_edges] + [
        (int(i), int(j)) for i, j in zip(pred.i, pred.j, strict=True)
    ]
    widest = max((abs(x_of[j] - x_of[i]) / 2 for i, j in arcs), default=1.0)
    fig = go.Figure()
    for edges, above in ((gold_edges, True), (list(zip(pred.i, pred.j, strict=True)), False)):
        for i, j in sorted(edges):
            i, j = int(i), int(j)
            right = above or (min(i, j), max(i, j)) in gold_edges
            x, y = _arc(x_of[i], x_of[j], above, widest)
            name = "gold" if above else ("predicted, in gold" if right else "predicted, wrong")
            fig.add_trace(
                go.Scatter(
                    x=x, y=y, mode="lines", name=name, legendgroup=name, showlegend=False,
                    line={"color": "#444444" if above else PALETTE[0 if right else 1],
                          "width": 1.5, "dash": "solid" if right else "dot"},
                    hoverinfo="skip",
                )
            )  # fmt: skip
    for name, color, dash in (
        ("gold", "#444444", "solid"),
        ("predicted, in gold", PALETTE[0], "solid"),
        ("predicted, wrong", PALETTE[1], "dot"),
    ):
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name=name,
                       line={"color": color, "dash": dash})
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=x_of,
            y=np.zeros(len(words)),
            mode="text",
            text=words.word,
            textfont={"size": 12 if style == "screen" else 7},
            showlegend=False,
            hoverinfo="skip",
        )
    )
    n = len(words)
    correct = sum((min(int(a), int(b)), max(int(a), int(b))) in gold_edges
                  for a, b in zip(pred.i, pred.j, strict=True))  # fmt: skip
    fig.update_layout(
        title=f"{model}, layer {layer}: gold tree (above) vs distance-probe tree (below), "
        f"{correct}/{len(gold_edges)} arcs",
    )
    right = float(x_of[-1]) if n else 1.0
    fig.update_xaxes(visible=False, range=[-1.0, right + 2.0])
    fig.update_yaxes(visible=False, range=[-1.08, 1.08])
    fig = apply_style(fig, style=style, column="double", height=420 if style == "screen" else 260)
    fig.update_layout(legend={"orientation": "h", "x": 0.0, "y": -0.02, "yanchor": "top"})
    if style == "screen":  # room for every word: about 8 px per character at 12 pt
        fig.update_layout(width=max(700, int(8 * right)))
    return fig


def structural_figures(
    table: pd.DataFrame,
    example: pd.DataFrame | None = None,
    *,
    split: str = "test",
    style: Literal["screen", "paper"] = "screen",
) -> dict[str, go.Figure]:
    """``structural`` and, with the example table, ``structural_tree_<model>`` per model.

    The tree is drawn at each model's best layer by UUAS on ``split``.
    """
    figures = {"structural": structural_metrics_figure(table, split=split, style=style)}
    if example is None or example.empty:
        return figures
    uuas = table[(table.probe == "structural") & (table.metric == "uuas") & (table.split == split)]
    for model in example.model.drop_duplicates():
        scores = uuas[uuas.model == model].groupby("layer").value.mean()
        if scores.empty:
            continue
        best = int(scores.idxmax())
        figures[figure_name("structural_tree", model)] = structural_tree_figure(
            example, str(model), best, style=style
        )
    return figures
