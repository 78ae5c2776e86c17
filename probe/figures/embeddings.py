"""Figures of the embeddings stage, built from ``results/embeddings`` alone.

- :func:`sts_bars`: STS Spearman of every pooling (column) x whitening variant (row) as a heat map
  with the numbers printed, one panel per model side by side (before vs after fine-tuning,
  random-init floor), on one colour scale zoomed to the scores' range: the differences that
  matter are a few points between 70 and 90, which bars on a 0-based axis would flatten;
- :func:`layer_curves`: STS Spearman of one pooling kind at every layer 0..L, one line per model,
  solid raw and dashed whitened;
- :func:`isotropy_bars`: average cosine and top-principal-component variance share per pooling,
  before and after each transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, series_colors, wrap_label

__all__ = ["embeddings_figures", "isotropy_bars", "layer_curves", "sts_bars"]

Style = Literal["screen", "paper"]
_TASK_NAMES = {"stsb": "STS-B", "sickr": "SICK-R"}
_METRIC_NAMES = {
    "spearman": "Spearman x 100",
    "pearson": "Pearson x 100",
    "avg_cosine": "average cosine",
    "top1_variance_share": "top-1 PC variance share",
}


def _in_order(values: pd.Series) -> list:
    return list(dict.fromkeys(values.dropna().tolist()))


def _variant_labels(frame: pd.DataFrame) -> pd.Series:
    """Whitening variant, with its fit corpus when the table has several."""
    fitted = frame["fit_on"].dropna()
    if fitted.nunique() <= 1:
        return frame["whitening"].astype(str)
    whitening = frame["whitening"].astype(str)
    return whitening.where(
        frame["fit_on"].isna(), whitening + " (" + frame["fit_on"].astype(str) + ")"
    )


def _metric_name(metric: str) -> str:
    if metric.startswith("top") and metric.endswith("_variance_share"):
        return f"top-{metric[3:-15]} PC variance share"
    return _METRIC_NAMES.get(metric, metric)


def _bars(frame: pd.DataFrame, metrics: Sequence[str], title: str, style: Style) -> go.Figure:
    """Heat maps: rows = metrics x whitening variants, columns = models; x = pooling.

    Each metric has one colour scale for all models, zoomed to its values' range; every cell
    prints its value, so no legend is needed and nothing relies on hatching or colour alone.
    """
    frame = frame.assign(variant=_variant_labels(frame))
    models = _in_order(frame["model"])
    variants = _in_order(frame["variant"])
    poolings = _in_order(frame["pooling_spec"])
    fig = make_subplots(
        rows=len(metrics),
        cols=max(len(models), 1),
        shared_yaxes=True,
        column_titles=[wrap_label(m) for m in models],
        horizontal_spacing=0.015,
        vertical_spacing=0.12,
    )
    for r, metric in enumerate(metrics, start=1):
        values = frame.loc[frame["metric"] == metric, "value"].astype(float)
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        axis = "coloraxis" if r == 1 else f"coloraxis{r}"
        digits = 1 if high - low > 2 else 3
        for c, model in enumerate(models, start=1):
            panel = frame[(frame["model"] == model) & (frame["metric"] == metric)]
            grid = panel.pivot_table(
                index="variant", columns="pooling_spec", values="value", aggfunc="mean"
            ).reindex(index=variants, columns=poolings)
            z = grid.to_numpy(float)
            text = [["" if np.isnan(v) else f"{v:.{digits}f}" for v in row] for row in z]
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    x=poolings,
                    y=variants,
                    coloraxis=axis,
                    text=text,
                    texttemplate="%{text}",  # plotly picks black or white per cell
                    xgap=1,
                    ygap=1,
                    hovertemplate=f"{model}<br>%{{x}}, %{{y}}<br>{_metric_name(metric)} "
                    f"%{{z:.{digits + 1}f}}<extra></extra>",
                    name=model,
                ),
                row=r,
                col=c,
            )
        fig.update_yaxes(title_text=_metric_name(metric), autorange="reversed", row=r, col=1)
        top = 1 - (r - 1) / len(metrics)
        fig.update_layout(
            {
                axis: {
                    "colorscale": "Viridis",
                    "cmin": low,
                    "cmax": high,
                    "colorbar": {
                        "title": {"text": _metric_name(metric), "side": "right"},
                        "len": 0.9 / len(metrics),
                        "y": top - 0.5 / len(metrics),
                        "yanchor": "middle",
                        "thickness": 12,
                    },
                }
            }
        )
    fig.update_xaxes(tickangle=-30)
    fig.update_layout(title=title)
    lines = 2 if any("<br>" in wrap_label(m) for m in models) else 1
    height = (28 * len(variants) + 90) * len(metrics) + 110 + 17 * lines
    apply_style(fig, style=style, column="double", height=height)
    fig.update_layout(margin={"t": 60 + 17 * lines})  # the title clear of the panel titles
    return fig


def sts_bars(
    table: pd.DataFrame,
    *,
    task: str = "stsb",
    split: str = "test",
    metric: str = "spearman",
    style: Style = "screen",
) -> go.Figure:
    """STS correlation of every headline pooling x whitening variant, models side by side."""
    frame = table[(table["task"] == task) & (table["split"] == split) & (table["metric"] == metric)]
    if "headline" in frame:
        frame = frame[frame["headline"].astype(bool)]
    title = f"{_TASK_NAMES.get(task, task)} {split}: {_metric_name(metric)} of cosine similarity"
    return _bars(frame, [metric], title, style)


def isotropy_bars(
    table: pd.DataFrame,
    *,
    task: str = "stsb",
    split: str = "test",
    metrics: Sequence[str] = ("avg_cosine", "top1_variance_share"),
    style: Style = "screen",
) -> go.Figure:
    """Isotropy of the sentence vectors of one split before and after each transform."""
    frame = table[
        (table["task"] == task) & (table["split"] == split) & table["metric"].isin(list(metrics))
    ]
    if "headline" in frame:
        frame = frame[frame["headline"].astype(bool)]
    metrics = [m for m in metrics if (frame["metric"] == m).any()]
    title = f"Isotropy of {_TASK_NAMES.get(task, task)} {split} sentence vectors"
    return _bars(frame, metrics, title, style)


def layer_curves(
    table: pd.DataFrame,
    *,
    probe: str = "mean",
    split: str = "test",
    metric: str = "spearman",
    controls: Sequence[str] = ("raw", "whiten"),
    colors: Mapping[str, str] | None = None,
    style: Style = "screen",
) -> go.Figure:
    """STS correlation of one pooling kind at each layer 0..L: a panel per task, line per model
    (its colour as in every figure), dash per whitening variant; the legend sits below."""
    frame = table[
        (table["pooling"] == probe)
        & table["layer"].notna()
        & (table["split"] == split)
        & (table["metric"] == metric)
        & table["whitening"].isin(list(controls))
    ]
    frame = frame.assign(variant=_variant_labels(frame))
    tasks = _in_order(frame["task"])
    models = _in_order(frame["model"])
    variants = _in_order(frame["variant"])
    palette = series_colors(_in_order(table["model"]), colors)
    fig = make_subplots(
        rows=1,
        cols=max(len(tasks), 1),
        shared_yaxes=True,
        column_titles=[_TASK_NAMES.get(t, t) for t in tasks],
        horizontal_spacing=0.04,
    )
    dashes = ("solid", "dash", "dot", "dashdot")
    for c, task in enumerate(tasks, start=1):
        for model in models:
            for v, variant in enumerate(variants):
                line = frame[
                    (frame["task"] == task)
                    & (frame["model"] == model)
                    & (frame["variant"] == variant)
                ].sort_values("layer")
                if line.empty:
                    continue
                name = f"{model}, {variant}"
                fig.add_trace(
                    go.Scatter(
                        x=line["layer"].astype(int),
                        y=line["value"],
                        mode="lines+markers",
                        name=name,
                        legendgroup=name,
                        showlegend=c == 1,
                        line={"color": palette[str(model)], "dash": dashes[v % len(dashes)]},
                        hovertemplate=f"{name}<br>layer %{{x}}: %{{y:.2f}}<extra></extra>",
                    ),
                    row=1,
                    col=c,
                )
        fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1, row=1, col=c)
    fig.update_yaxes(title_text=_metric_name(metric), row=1, col=1)
    fig.update_layout(
        title=f"{probe} pooling per layer, {split}: {_metric_name(metric)}",
        legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"},
    )
    rows = -(-len(models) * len(variants) // 3)  # legend lines below the plot, ~3 entries each
    apply_style(fig, style=style, column="double", height=380 + 22 * rows)
    fig.update_layout(margin={"b": 70 + 22 * rows})
    return fig


def embeddings_figures(
    table: pd.DataFrame,
    *,
    task: str | None = None,
    split: str | None = None,
    metric: str = "spearman",
    colors: Mapping[str, str] | None = None,
    style: Style = "screen",
) -> dict[str, go.Figure]:
    """Every figure the table supports, by file name (``embeddings_sts_stsb``, ...).

    ``task`` (default: every task), ``split`` (default: test, else the last split) and
    ``metric`` (``spearman`` or ``pearson``) choose what the STS and per-layer figures show.
    """
    figures: dict[str, go.Figure] = {}
    splits = _in_order(table["split"])
    if split is None:
        split = "test" if "test" in splits else (splits[-1] if splits else "test")
    tasks = [task] if task is not None else _in_order(table["task"])
    for name in tasks:
        if ((table["task"] == name) & (table["metric"] == metric)).any():
            figures[figure_name("embeddings_sts", name)] = sts_bars(
                table, task=name, split=split, metric=metric, style=style
            )
    shown = table[table["task"].isin(tasks)]
    layered = shown[shown["layer"].notna() & (shown["metric"] == metric)]
    for probe in ("mean", "mean_nospecial", "cls"):
        if layered[layered["pooling"] == probe]["layer"].nunique() > 1:
            suffix = "" if probe == "mean" else f"_{probe}"
            figures[f"embeddings_layers{suffix}"] = layer_curves(
                shown, probe=probe, split=split, metric=metric, colors=colors, style=style
            )
    iso = table[table["metric"] == "avg_cosine"]
    if not iso.empty:
        iso_task = task if task is not None and (iso["task"] == task).any() else None
        iso_task = iso_task or ("stsb" if (iso["task"] == "stsb").any() else iso["task"].iloc[0])
        iso_splits = _in_order(iso["split"])
        iso_split = split if split in iso_splits else "test" if "test" in iso_splits else None
        iso_split = iso_split or iso_splits[0]
        figures["embeddings_isotropy"] = isotropy_bars(
            table, task=iso_task, split=iso_split, style=style
        )
    return figures
