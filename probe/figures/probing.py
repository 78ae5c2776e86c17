"""Layer-wise probe figures, computed only from ``results/probe.parquet``."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for

__all__ = ["emergence_figure", "layerwise_figure", "layerwise_figures"]


def _mean_by_layer(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per layer (value, ci_low, ci_high when present)."""
    columns = [c for c in ("value", "ci_low", "ci_high") if c in frame]
    return frame.groupby("layer", as_index=False)[columns].mean().sort_values("layer")


def _band(x: pd.Series, low: pd.Series, high: pd.Series, color: str, name: str) -> go.Scatter:
    return go.Scatter(
        x=[*x, *x[::-1]],
        y=[*high, *low[::-1]],
        mode="lines",  # no markers on the band's outline
        fill="toself",
        fillcolor=color,
        opacity=0.18,
        line={"width": 0},
        hoverinfo="skip",
        showlegend=False,
        legendgroup=name,
    )


def layerwise_figure(
    table: pd.DataFrame,
    task: str,
    *,
    split: str = "test",
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Probe accuracy by layer (with 95% CI band), the control-task curve, and selectivity.

    One colour per model (or checkpoint); solid = task, dotted = control task; the lower panel
    shows selectivity = task accuracy - control accuracy.
    """
    data = table[(table.task == task) & (table.split == split) & (table.probe == "linear")]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06
    )
    for index, (model, group) in enumerate(data.groupby("model", sort=False)):
        color = color_for(index)
        task_acc = _mean_by_layer(group[(group.control == "task") & (group.metric == "accuracy")])
        if task_acc.empty:
            continue
        x = task_acc.layer.astype(int)
        if "ci_low" in task_acc and task_acc.ci_low.notna().all():
            fig.add_trace(
                _band(x, 100 * task_acc.ci_low, 100 * task_acc.ci_high, color, model), row=1, col=1
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=100 * task_acc.value,
                name=f"{model}",
                mode="lines+markers",
                line={"color": color},
                legendgroup=model,
            ),
            row=1,
            col=1,
        )
        control = _mean_by_layer(group[(group.control == "control") & (group.metric == "accuracy")])
        if not control.empty:
            fig.add_trace(
                go.Scatter(
                    x=control.layer.astype(int),
                    y=100 * control.value,
                    name=f"{model} (control)",
                    mode="lines+markers",
                    line={"color": color, "dash": "dot"},
                    marker={"symbol": "circle-open"},
                    legendgroup=model,
                ),
                row=1,
                col=1,
            )
        selectivity = _mean_by_layer(group[group.metric == "selectivity"])
        if not selectivity.empty:
            fig.add_trace(
                go.Bar(
                    x=selectivity.layer.astype(int),
                    y=100 * selectivity.value,
                    name=f"{model} selectivity",
                    marker_color=color,
                    legendgroup=model,
                    showlegend=False,
                ),
                row=2,
                col=1,
            )
    majority = table[(table.task == task) & (table.split == split) & (table.probe == "majority")]
    if not majority.empty and not data.empty:
        # A trace, not add_hline: shapes do not count for autorange, so a majority rate below
        # every probe curve would fall off the axis.
        layers = data.layer.dropna().astype(int)
        fig.add_trace(
            go.Scatter(
                x=[layers.min(), layers.max()],
                y=[100 * majority.value.mean()] * 2,
                name="majority class",
                mode="lines",
                line={"dash": "dash", "color": "#888888"},
            ),
            row=1,
            col=1,
        )
    fig.update_layout(title=f"{task}: probe accuracy by layer ({split})", barmode="group")
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="selectivity", row=2, col=1)
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1, row=2, col=1)
    return apply_style(fig, style=style, height=560 if style == "screen" else None)


def emergence_figure(
    table: pd.DataFrame,
    task: str,
    *,
    split: str = "test",
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure | None:
    """Probe accuracy and selectivity against training step, one line per layer.

    For studies whose models are checkpoints of one training run (``trained:job@step``): how a
    property emerges while the model learns. ``None`` when fewer than two checkpoints have a step.
    """
    if "checkpoint" not in table:
        return None
    data = table[
        (table.task == task)
        & (table.split == split)
        & (table.probe == "linear")
        & (table.control == "task")
    ]
    data = data.assign(step=pd.to_numeric(data.checkpoint, errors="coerce"))
    data = data.dropna(subset=["step", "layer"])
    if data.step.nunique() < 2:
        return None
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["accuracy (%)", "selectivity"], horizontal_spacing=0.1
    )
    for col, metric in enumerate(("accuracy", "selectivity"), start=1):
        means = data[data.metric == metric].groupby(["layer", "step"], as_index=False).value.mean()
        for index, (layer, line) in enumerate(means.groupby("layer")):
            name = f"layer {int(layer)}"
            fig.add_trace(
                go.Scatter(
                    x=line.step,
                    y=100 * line.value,
                    name=name,
                    mode="lines+markers",
                    line={"color": color_for(index)},
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_layout(title=f"{task}: probe score by training step ({split})")
    fig.update_xaxes(title_text="training step")
    return apply_style(fig, style=style, height=420 if style == "screen" else None)


def layerwise_figures(table: pd.DataFrame, **kwargs: object) -> dict[str, go.Figure]:
    """Per task: :func:`layerwise_figure` (``layerwise_<task>``) and, for checkpoints of a
    training run, :func:`emergence_figure` (``emergence_<task>``)."""
    figures = {}
    for task in table.task.dropna().unique():
        figures[figure_name("layerwise", task)] = layerwise_figure(table, task, **kwargs)  # type: ignore[arg-type]
        emergence = emergence_figure(table, task, **kwargs)  # type: ignore[arg-type]
        if emergence is not None:
            figures[figure_name("emergence", task)] = emergence
    return figures
