"""Training curves from ``results/training.parquet``: pure functions ``table -> go.Figure``.

The table is the training stage's tidy history: one row per ``model`` (job), ``split``
(train/dev/test), ``metric`` and ``step``; rows without a step are constants (the unigram
entropy of a pretraining corpus, the majority-label accuracy of a fine-tuning dev set or of the
held-out NSP pairs), drawn as dashed reference lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, series_colors

__all__ = [
    "PANELS",
    "TASK_NAMES",
    "loss_curves",
    "task_name",
    "training_curves",
    "training_figures",
]

#: Human names of the ``task`` column of training tables (figure titles, page labels).
TASK_NAMES = {
    "mlm_nsp": "MLM + NSP pretraining",
    "mlm": "MLM pretraining",
    "sst2": "SST-2 fine-tuning",
    "upos": "UPOS fine-tuning",
    "xpos": "XPOS fine-tuning",
    "ner_conll2003": "CoNLL-2003 NER fine-tuning",
    "ner_uner": "UNER NER fine-tuning",
}

#: Default panels per task family: (split, metric, axis title).
PANELS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "mlm": (
        ("train", "loss", "train loss (MLM + NSP)"),
        ("dev", "mlm_loss", "dev MLM loss (nats)"),
        ("dev", "nsp_accuracy", "dev NSP accuracy"),
    ),
    "accuracy": (
        ("train", "loss", "train loss"),
        ("dev", "loss", "dev loss"),
        ("dev", "accuracy", "dev accuracy"),
    ),
    "f1": (
        ("train", "loss", "train loss"),
        ("dev", "loss", "dev loss"),
        ("dev", "f1", "dev entity F1"),
    ),
}
# Constant rows drawn as reference lines on the panel of the metric they compare with.
_REFERENCES = {
    ("dev", "mlm_loss"): ("train", "unigram_entropy", "unigram entropy"),
    ("train", "mlm_loss"): ("train", "unigram_entropy", "unigram entropy"),
    ("dev", "accuracy"): ("dev", "majority_accuracy", "majority label"),
    ("dev", "nsp_accuracy"): ("dev", "nsp_majority_accuracy", "chance (majority label)"),
}
# Scores in [0, 1]: drawn as percent, on a range that includes the reference (chance) and spans
# at least 20 points, so noise around chance reads as noise rather than as a spike.
_FRACTIONS = {"accuracy", "nsp_accuracy", "f1", "mlm_accuracy"}
_MIN_SPAN = 0.2


def task_name(task: object) -> str:
    """Human name of a training ``task`` value (``mlm_nsp`` -> ``MLM + NSP pretraining``)."""
    return TASK_NAMES.get(str(task), str(task))


def _smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def _fraction_range(values: list[float]) -> list[float]:
    """A y range for scores in [0, 1] holding ``values`` and at least :data:`_MIN_SPAN` wide."""
    low, high = min(values), max(values)
    pad = max((_MIN_SPAN - (high - low)) / 2, 0.02)
    low, high = low - pad, high + pad
    if low < 0:
        low, high = 0.0, high - low
    if high > 1:
        low, high = max(0.0, low - (high - 1)), 1.0
    return [low, high]


def _add_series(
    fig: go.Figure,
    table: pd.DataFrame,
    split: str,
    metric: str,
    *,
    models: Sequence[str],
    colors: Mapping[str, str],
    smooth: int,
    row: int | None = None,
    col: int | None = None,
    legend: bool = True,
) -> list[float]:
    """Draw one panel; returns every y value drawn (curves and reference lines)."""
    where = {"row": row, "col": col} if row is not None else {}
    drawn: list[float] = []
    for model in models:
        rows = table[
            (table["model"] == model)
            & (table["split"] == split)
            & (table["metric"] == metric)
            & table["step"].notna()
        ].sort_values("step")
        if rows.empty:
            continue
        color = colors[str(model)]
        window = smooth if split == "train" else 1
        if window > 1:  # raw values faint behind the smoothed line
            fig.add_trace(
                go.Scatter(
                    x=rows["step"],
                    y=rows["value"],
                    mode="lines",
                    line={"color": color, "width": 1},
                    opacity=0.25,
                    showlegend=False,
                    hoverinfo="skip",
                    legendgroup=model,
                ),
                **where,
            )
        fig.add_trace(
            go.Scatter(
                x=rows["step"],
                y=_smooth(rows["value"], window),
                mode="lines" if split == "train" else "lines+markers",
                name=model,
                legendgroup=model,
                showlegend=legend,
                line={"color": color, "width": 2},
            ),
            **where,
        )
        drawn += rows["value"].astype(float).tolist()
        reference = _REFERENCES.get((split, metric))
        if reference is not None:
            ref = table[
                (table["model"] == model)
                & (table["split"] == reference[0])
                & (table["metric"] == reference[1])
            ]
            if not ref.empty:
                value = float(ref["value"].iloc[-1])
                fig.add_trace(
                    go.Scatter(
                        x=[rows["step"].min(), rows["step"].max()],
                        y=[value] * 2,
                        mode="lines",
                        line={"color": color, "dash": "dash", "width": 1},
                        name=f"{model}: {reference[2]}",
                        legendgroup=model,
                        showlegend=True,
                    ),
                    **where,
                )
                drawn.append(value)
    if metric in _FRACTIONS and drawn:
        fig.update_yaxes(range=_fraction_range(drawn), tickformat=".0%", **where)
    return drawn


def _legend_below(fig: go.Figure, style: str) -> None:
    # Beside the plot a legend takes width from every panel (three panels of ~150 px with two
    # runs); below it (clear of the x-axis titles) it takes height only.
    y = -0.22 if style == "screen" else -0.4
    fig.update_layout(
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": y, "yanchor": "top"},
    )


def loss_curves(
    table: pd.DataFrame,
    *,
    metric: str = "loss",
    split: str = "train",
    models: Sequence[str] | None = None,
    smooth: int = 1,
    colors: Mapping[str, str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """One metric over steps, one line per job (e.g. pretrained vs scratch fine-tuning).

    Parameters
    ----------
    table : the training table.
    metric, split : which curve (``loss``/``train``, ``accuracy``/``dev``, ``lr``/``train`` ...).
    models : jobs to show, in legend order (default: all, in table order).
    smooth : rolling-mean window over steps for train curves (1 = raw).
    colors : ``job -> colour`` (default: by the job's place in the whole table).
    """
    palette = series_colors(table["model"].drop_duplicates(), colors)
    models = list(models or table["model"].drop_duplicates())
    fig = go.Figure()
    _add_series(fig, table, split, metric, models=models, colors=palette, smooth=smooth)
    label = f"{split} {metric.replace('_', ' ')}"
    fig.update_layout(title=label)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=label)
    _legend_below(fig, style)
    apply_style(fig, style=style)
    fig.update_layout(margin={"b": 110})
    return fig


def training_curves(
    table: pd.DataFrame,
    *,
    panels: Sequence[tuple[str, str, str]] | None = None,
    models: Sequence[str] | None = None,
    smooth: int | None = None,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Side-by-side panels (train loss, dev loss, dev metric) comparing jobs, one colour each.

    ``panels`` are ``(split, metric, axis title)``; by default chosen from the jobs' task
    (:data:`PANELS`). ``smooth`` defaults to about 1/50 of the steps for train curves. Scores in
    [0, 1] are drawn in percent on a range that shows their reference line (majority label,
    chance) and spans at least 20 points.
    """
    palette = series_colors(table["model"].drop_duplicates(), colors)
    models = list(models or table["model"].drop_duplicates())
    if panels is None:
        tasks = set(table.loc[table["model"].isin(models), "task"].dropna())
        family = (
            "mlm"
            if any(str(t).startswith("mlm") for t in tasks)
            else "f1"
            if any(str(t).startswith("ner") for t in tasks)
            else "accuracy"
        )
        panels = PANELS[family]
    if smooth is None:
        steps = table.loc[table["split"] == "train", "step"].dropna()
        smooth = max(1, int(steps.max()) // 50) if not steps.empty else 1
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=[p[2] for p in panels], horizontal_spacing=0.08
    )
    for k, (split, metric, _label) in enumerate(panels, start=1):
        _add_series(
            fig,
            table,
            split,
            metric,
            models=models,
            colors=palette,
            smooth=smooth,
            row=1,
            col=k,
            legend=k == 1,
        )
        fig.update_xaxes(title_text="step", row=1, col=k)
    if title:
        fig.update_layout(title=title)
    _legend_below(fig, style)
    apply_style(fig, style=style, column="double", height=440 if style == "screen" else 300)
    # Room between the title and the panel titles.
    fig.update_layout(margin={"b": 120 if style == "screen" else 95, "t": 80 if title else 50})
    return fig


def training_figures(
    table: pd.DataFrame,
    *,
    smooth: int | None = None,
    colors: Mapping[str, str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> dict[str, go.Figure]:
    """The stage's figures: ``training_<task>`` comparing every job of that task."""
    palette = series_colors(table["model"].drop_duplicates(), colors)
    figures = {}
    for task, rows in table.groupby("task", sort=False):
        figures[figure_name("training", task)] = training_curves(
            rows,
            models=list(rows["model"].drop_duplicates()),
            title=f"Training: {task_name(task)}",
            smooth=smooth,
            colors=palette,
            style=style,
        )
    return figures
