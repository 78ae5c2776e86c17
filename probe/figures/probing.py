"""Layer-wise probe figures, computed only from ``results/probe.parquet``.

Each task is drawn in a metric: by default its *headline* metric (:func:`headline_metric`), the
one papers report for it: the official SemEval-2010 Task 8 score for relations, macro-F1 for
entity types, accuracy otherwise. The control task and selectivity are defined on accuracy only,
so they are drawn with accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for, series_colors

__all__ = [
    "METRIC_NAMES",
    "emergence_figure",
    "headline_metric",
    "layerwise_figure",
    "layerwise_figures",
    "probe_metrics",
]

#: Probe metrics in order of preference as a task's headline, with their axis names.
METRIC_NAMES = {
    "official_f1": "official SemEval-2010 F1",
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
}


def probe_metrics(table: pd.DataFrame, task: str | None = None) -> list[str]:
    """Score metrics of the linear probes (of ``task``), headline-first."""
    rows = table[table.probe == "linear"] if "probe" in table else table
    if task is not None:
        rows = rows[rows.task == task]
    present = set(rows.metric.dropna())
    return [m for m in METRIC_NAMES if m in present]


def headline_metric(table: pd.DataFrame, task: str) -> str:
    """The metric papers report for ``task``: the first of :data:`METRIC_NAMES` it has."""
    metrics = probe_metrics(table, task)
    return metrics[0] if metrics else "accuracy"


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
    metric: str | None = None,
    colors: Mapping[str, str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Probe score by layer (with its 95% CI band where the table has one), and for accuracy the
    control-task curve and selectivity.

    One colour per model (or checkpoint), the same for a model in every figure (``colors``, else
    the model's place in the whole ``table``); solid = task, dotted = control task; the lower
    panel shows selectivity = task accuracy - control accuracy. ``metric`` defaults to the task's
    :func:`headline_metric`.
    """
    metric = metric or headline_metric(table, task)
    palette = series_colors(table.model.dropna(), colors)
    data = table[(table.task == task) & (table.split == split) & (table.probe == "linear")]
    accuracy = metric == "accuracy"
    fig = make_subplots(
        rows=2 if accuracy else 1,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.68, 0.32] if accuracy else None,
        vertical_spacing=0.06,
    )
    for model, group in data.groupby("model", sort=False):
        color = palette[str(model)]
        task_acc = _mean_by_layer(group[(group.control == "task") & (group.metric == metric)])
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
        control = _mean_by_layer(group[(group.control == "control") & (group.metric == metric)])
        if accuracy and not control.empty:
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
        if accuracy and not selectivity.empty:
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
    majority = table[
        (table.task == task)
        & (table.split == split)
        & (table.probe == "majority")
        & (table.metric == metric)
    ]
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
    name = METRIC_NAMES.get(metric, metric)
    fig.update_layout(title=f"{task}: probe {name} by layer ({split})", barmode="group")
    fig.update_yaxes(title_text=f"{name} (%)", row=1, col=1)
    if accuracy:
        fig.update_yaxes(title_text="selectivity", row=2, col=1)
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1, row=2 if accuracy else 1, col=1)
    height = (560 if accuracy else 420) if style == "screen" else (330 if accuracy else 280)
    return apply_style(fig, style=style, height=height)


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


def layerwise_figures(
    table: pd.DataFrame,
    *,
    metric: str | None = None,
    colors: Mapping[str, str] | None = None,
    **kwargs: object,
) -> dict[str, go.Figure]:
    """Per task: :func:`layerwise_figure` (``layerwise_<task>``) and, for checkpoints of a
    training run, :func:`emergence_figure` (``emergence_<task>``).

    ``metric`` is drawn for the tasks that have it; the others (and all, when ``None``) get
    their headline metric.
    """
    colors = series_colors(table.model.dropna(), colors)  # one colour per model in every figure
    figures = {}
    for task in table.task.dropna().unique():
        chosen = metric if metric in probe_metrics(table, task) else None
        figures[figure_name("layerwise", task)] = layerwise_figure(
            table,
            task,
            metric=chosen,
            colors=colors,
            **kwargs,  # type: ignore[arg-type]
        )
        emergence = emergence_figure(table, task, **kwargs)  # type: ignore[arg-type]
        if emergence is not None:
            figures[figure_name("emergence", task)] = emergence
    return figures
