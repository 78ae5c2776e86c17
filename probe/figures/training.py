"""Training curves from ``results/training.parquet``: pure functions ``table -> go.Figure``.

The table is the training stage's tidy history: one row per ``model`` (job), ``split``
(train/dev/test), ``metric`` and ``step``; rows without a step are constants (the unigram
entropy of a pretraining corpus, the majority-label accuracy of a fine-tuning dev set or of the
held-out NSP pairs), drawn as dashed reference lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for

__all__ = ["PANELS", "loss_curves", "training_curves", "training_figures"]

#: Default panels per task family: (split, metric, axis title).
PANELS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "mlm": (
        ("train", "loss", "train loss"),
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
    ("dev", "nsp_accuracy"): ("dev", "nsp_majority_accuracy", "majority label"),
}


def _smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1).mean() if window > 1 else values


def _add_series(
    fig: go.Figure,
    table: pd.DataFrame,
    split: str,
    metric: str,
    *,
    models: Sequence[str],
    smooth: int,
    row: int | None = None,
    col: int | None = None,
    legend: bool = True,
) -> None:
    where = {"row": row, "col": col} if row is not None else {}
    for i, model in enumerate(models):
        rows = table[
            (table["model"] == model)
            & (table["split"] == split)
            & (table["metric"] == metric)
            & table["step"].notna()
        ].sort_values("step")
        if rows.empty:
            continue
        color = color_for(i)
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
        reference = _REFERENCES.get((split, metric))
        if reference is not None:
            ref = table[
                (table["model"] == model)
                & (table["split"] == reference[0])
                & (table["metric"] == reference[1])
            ]
            if not ref.empty:
                fig.add_trace(
                    go.Scatter(
                        x=[rows["step"].min(), rows["step"].max()],
                        y=[ref["value"].iloc[-1]] * 2,
                        mode="lines",
                        line={"color": color, "dash": "dash", "width": 1},
                        name=f"{model}: {reference[2]}",
                        legendgroup=model,
                        showlegend=True,
                    ),
                    **where,
                )


def loss_curves(
    table: pd.DataFrame,
    *,
    metric: str = "loss",
    split: str = "train",
    models: Sequence[str] | None = None,
    smooth: int = 1,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """One metric over steps, one line per job (e.g. pretrained vs scratch fine-tuning).

    Parameters
    ----------
    table : the training table.
    metric, split : which curve (``loss``/``train``, ``accuracy``/``dev``, ``lr``/``train`` ...).
    models : jobs to show, in legend order (default: all, in table order).
    smooth : rolling-mean window over steps for train curves (1 = raw).
    """
    models = list(models or table["model"].drop_duplicates())
    fig = go.Figure()
    _add_series(fig, table, split, metric, models=models, smooth=smooth)
    fig.update_layout(title=f"{split} {metric}")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=f"{split} {metric}")
    return apply_style(fig, style=style)


def training_curves(
    table: pd.DataFrame,
    *,
    panels: Sequence[tuple[str, str, str]] | None = None,
    models: Sequence[str] | None = None,
    smooth: int | None = None,
    title: str | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Side-by-side panels (train loss, dev loss, dev metric) comparing jobs, one colour each.

    ``panels`` are ``(split, metric, axis title)``; by default chosen from the jobs' task
    (:data:`PANELS`). ``smooth`` defaults to about 1/50 of the steps for train curves.
    """
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
            fig, table, split, metric, models=models, smooth=smooth, row=1, col=k, legend=k == 1
        )
        fig.update_xaxes(title_text="step", row=1, col=k)
    if title:
        fig.update_layout(title=title)
    return apply_style(fig, style=style, column="double")


def training_figures(
    table: pd.DataFrame, *, smooth: int | None = None, style: Literal["screen", "paper"] = "screen"
) -> dict[str, go.Figure]:
    """The stage's figures: ``training_<task>`` comparing every job of that task."""
    figures = {}
    for task, rows in table.groupby("task", sort=False):
        figures[figure_name("training", task)] = training_curves(
            rows,
            models=list(rows["model"].drop_duplicates()),
            title=f"training: {task}",
            smooth=smooth,
            style=style,
        )
    return figures
