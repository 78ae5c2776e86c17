"""Cross-task layer summary (Tenney et al. 2019, Figure 1 style), from ``probe_summary``.

One row per task, sorted by center of gravity (lowest first: the "pipeline" order). Bars are the
per-layer gains of the cumulative mix-k probe (delta_l); the marker on each row is the center of
gravity (filled) and the expected layer of the scalar mix (open), one colour per model. A center
of gravity whose layers gain too little in total is not drawn: it is not meaningful, and would
stretch the layer axis (see :func:`~probe.probes.summary_rules.center_of_gravity_is_meaningful`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.style import apply_style, series_colors
from probe.probes.summary_rules import center_of_gravity_is_meaningful

__all__ = ["mix_weights_heatmap", "pipeline_figure", "task_order"]


def task_order(summary: pd.DataFrame) -> list[str]:
    """Tasks sorted by the center of gravity of the first model: one order for every figure.

    Tasks whose center of gravity is not meaningful for that model (its layers gain under
    ``MIN_COG_GAIN_POINTS`` in total) sort by their expected layer, after the others.
    """
    cog = summary[summary.metric == "center_of_gravity"]
    if cog.empty:
        return list(dict.fromkeys(summary.task.dropna()))
    mine = summary[summary.model == cog.model.iloc[0]]
    centers = mine[mine.metric == "center_of_gravity"].groupby("task").value.mean()
    expected = mine[mine.metric == "expected_layer"].groupby("task").value.mean()
    deltas = mine[mine.metric == "delta"].groupby(["task", "layer"]).value.mean()  # over seeds
    gains = deltas.groupby("task").sum()
    stable = center_of_gravity_is_meaningful(gains.reindex(centers.index).fillna(0.0))
    key = centers.where(stable, 1e6 + expected.reindex(centers.index).fillna(0.0))
    ordered = list(key.sort_values(kind="stable").index)
    return ordered + [t for t in dict.fromkeys(summary.task.dropna()) if t not in ordered]


def pipeline_figure(
    summary: pd.DataFrame,
    *,
    colors: Mapping[str, str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Per-layer deltas, center of gravity and expected layer for each task and model."""
    tasks = task_order(summary)
    models = list(summary.model.dropna().unique())
    palette = series_colors(models, colors)
    fig = make_subplots(
        rows=len(tasks), cols=1, shared_xaxes=True, vertical_spacing=0.09, subplot_titles=tasks
    )
    for row, task in enumerate(tasks, start=1):
        data = summary[summary.task == task]
        for index, model in enumerate(models):
            color = palette[str(model)]
            rows = data[data.model == model]
            deltas = rows[rows.metric == "delta"].groupby("layer").value.mean().sort_index()
            fig.add_trace(
                go.Bar(
                    x=deltas.index.astype(int),
                    y=100 * deltas.values,
                    name=model,
                    marker_color=color,
                    legendgroup=model,
                    showlegend=row == 1,
                    hovertemplate="layer %{x}: Δ %{y:.2f} points",
                ),
                row=row,
                col=1,
            )
            top = max(100 * deltas.max() if len(deltas) else 0.0, 0.5)
            meaningful = center_of_gravity_is_meaningful(deltas.sum())
            for metric, symbol in (
                ("center_of_gravity", "diamond"),
                ("expected_layer", "diamond-open"),
            ):
                if metric == "center_of_gravity" and not meaningful:
                    continue
                value = rows[rows.metric == metric].value.mean()
                label = metric.replace("_", " ")
                fig.add_trace(
                    go.Scatter(
                        x=[value],
                        y=[top * (1.05 + 0.1 * index)],
                        mode="markers",
                        marker={"symbol": symbol, "size": 10, "color": color},
                        legendgroup=model,
                        name=label,
                        showlegend=False,
                        hovertemplate=f"{model} {label}: %{{x:.2f}}<extra></extra>",
                    ),
                    row=row,
                    col=1,
                )
    for symbol, label in (("diamond", "center of gravity"), ("diamond-open", "expected layer")):
        fig.add_trace(  # legend keys for the markers
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"symbol": symbol, "size": 10, "color": "#555555"},
                name=label,
            ),
            row=1,
            col=1,
        )
    layers = summary.loc[summary.metric == "delta", "layer"].dropna()
    last = int(layers.max()) if len(layers) else 0
    fig.update_layout(
        title="Where each task is resolved: Δ accuracy from adding each layer (mix-k)",
        barmode="group",
        bargap=0.15,
    )
    fig.update_xaxes(range=[-0.5, last + 0.5], dtick=1)
    fig.update_xaxes(title_text="layer (0 = embeddings)", row=len(tasks), col=1)
    fig.update_yaxes(title_text="Δ (points)", title_font={"size": 10})
    return apply_style(
        fig,
        style=style,
        column="double",
        height=max(360, 200 * len(tasks)) if style == "screen" else None,
    )


def mix_weights_heatmap(
    summary: pd.DataFrame, model: str, *, style: Literal["screen", "paper"] = "screen"
) -> go.Figure:
    """Scalar-mix weights (tasks x layers) of one model.

    Every model's heat map has the same task order (:func:`task_order`, top row first) and the
    same colour scale (0 to the largest weight of any model), so they can be compared by eye.
    """
    every = summary[summary.metric == "mix_weight"]
    weights = every[every.model == model]
    grid = weights.pivot_table(index="task", columns="layer", values="value", aggfunc="mean")
    grid = grid.loc[[t for t in task_order(summary) if t in grid.index]]
    top = float(every.groupby(["model", "task", "layer"]).value.mean().max())
    fig = go.Figure(
        go.Heatmap(
            z=grid.values,
            x=grid.columns.astype(int),
            y=list(grid.index),
            zmin=0.0,
            zmax=top if top > 0 else 1.0,
            colorscale="Blues",
            colorbar={"title": "weight"},
            hovertemplate="%{y}, layer %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(title={"text": "Scalar-mix weights", "subtitle": {"text": str(model)}})
    fig.update_xaxes(title_text="layer", dtick=1)
    fig.update_yaxes(autorange="reversed")  # first task of the pipeline order on top
    return apply_style(fig, style=style)
