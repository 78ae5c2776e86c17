"""MDL figures, computed only from ``results/mdl.parquet``: code length and compression by layer."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for

__all__ = ["mdl_figure", "mdl_figures"]


def mdl_figure(
    table: pd.DataFrame, task: str, *, style: Literal["screen", "paper"] = "screen"
) -> go.Figure:
    """Online code length (kbits) and compression by layer; solid = task, dotted = control.

    One colour per model (or checkpoint); values are means over seeds. The dashed grey line in
    the upper panel is the uniform code length, ``N log2 K`` (the same for task and control).
    """
    data = table[(table.task == task) & table.layer.notna()]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.16,
        subplot_titles=["online codelength (kbits)", "compression (uniform / online)"],
    )  # fmt: skip
    for index, (model, group) in enumerate(data.groupby("model", sort=False)):
        color = color_for(index)
        for control, dash in (("task", "solid"), ("control", "dot")):
            rows = group[group.control == control]
            for row, metric, scale in ((1, "codelength", 1e-3), (2, "compression", 1.0)):
                line = (
                    rows[rows.metric == metric]
                    .groupby("layer", as_index=False)
                    .value.mean()
                    .sort_values("layer")
                )
                if line.empty:
                    continue
                name = f"{model}" if control == "task" else f"{model} (control)"
                fig.add_trace(
                    go.Scatter(
                        x=line.layer.astype(int),
                        y=scale * line.value,
                        name=name,
                        mode="lines+markers",
                        line={"color": color, "dash": dash},
                        marker={"symbol": "circle" if control == "task" else "circle-open"},
                        legendgroup=name,
                        showlegend=row == 1,
                    ),
                    row=row,
                    col=1,
                )
    uniform = table[(table.task == task) & (table.metric == "uniform_codelength")]
    if not uniform.empty and not data.empty:
        layers = data.layer.astype(int)
        fig.add_trace(
            go.Scatter(
                x=[layers.min(), layers.max()],
                y=[uniform.value.mean() / 1000] * 2,
                name="uniform code",
                mode="lines",
                line={"dash": "dash", "color": "#888888"},
            ),
            row=1,
            col=1,
        )
    fig.update_layout(title=f"{task}: MDL (online code) by layer")
    fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1, row=2, col=1)
    fig = apply_style(fig, style=style, height=560 if style == "screen" else 380)
    if style == "paper":  # a single column has no room for a legend beside the plot
        fig.update_layout(legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
    return fig


def mdl_figures(table: pd.DataFrame, **kwargs: object) -> dict[str, go.Figure]:
    """Per task: :func:`mdl_figure` as ``mdl_<task>``."""
    return {
        figure_name("mdl", task): mdl_figure(table, task, **kwargs)  # type: ignore[arg-type]
        for task in table.task.dropna().unique()
    }
