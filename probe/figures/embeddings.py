"""Figures of the embeddings stage, built from ``results/embeddings`` alone.

- :func:`sts_bars`: STS Spearman per pooling (x) and whitening variant (colour), one panel per
  model side by side (before vs after fine-tuning, random-init floor);
- :func:`layer_curves`: STS Spearman of one pooling kind at every layer 0..L, one line per model,
  solid raw and dashed whitened;
- :func:`isotropy_bars`: average cosine and top-principal-component variance share per pooling,
  before and after each transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for

__all__ = ["embeddings_figures", "isotropy_bars", "layer_curves", "sts_bars"]

Style = Literal["screen", "paper"]
_HATCHES = ("", "/", ".", "x", "\\")
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
        return frame["control"].astype(str)
    control = frame["control"].astype(str)
    return control.where(frame["fit_on"].isna(), control + " (" + frame["fit_on"].astype(str) + ")")


def _metric_name(metric: str) -> str:
    if metric.startswith("top") and metric.endswith("_variance_share"):
        return f"top-{metric[3:-15]} PC variance share"
    return _METRIC_NAMES.get(metric, metric)


def _bars(frame: pd.DataFrame, metrics: Sequence[str], title: str, style: Style) -> go.Figure:
    """Grouped bars: rows = metrics, columns = models, x = pooling, colour = whitening variant,
    hatching = fit corpus (so that many variant x corpus pairs stay distinguishable)."""
    frame = frame.assign(variant=_variant_labels(frame))
    models = _in_order(frame["model"])
    variants = _in_order(frame["variant"])
    poolings = _in_order(frame["pooling"])
    controls = _in_order(frame["control"])
    corpora = _in_order(frame["fit_on"])
    first = frame.drop_duplicates("variant").set_index("variant")
    looks = {
        v: (
            color_for(controls.index(first.at[v, "control"])),
            ""
            if pd.isna(first.at[v, "fit_on"])
            else _HATCHES[corpora.index(first.at[v, "fit_on"]) % len(_HATCHES)],
        )
        for v in variants
    }
    fig = make_subplots(
        rows=len(metrics),
        cols=len(models),
        shared_yaxes="rows",
        shared_xaxes=True,
        column_titles=models,
        horizontal_spacing=0.02,
        vertical_spacing=0.08,
    )
    for r, metric in enumerate(metrics, start=1):
        for c, model in enumerate(models, start=1):
            panel = frame[(frame["model"] == model) & (frame["metric"] == metric)]
            for variant in variants:
                values = panel[panel["variant"] == variant].set_index("pooling")["value"]
                color, hatch = looks[variant]
                fig.add_trace(
                    go.Bar(
                        x=poolings,
                        y=[values.get(p) for p in poolings],
                        name=variant,
                        marker={"color": color, "pattern": {"shape": hatch}},
                        legendgroup=variant,
                        showlegend=r == 1 and c == 1,
                        hovertemplate=f"{model}<br>%{{x}}, {variant}<br>{metric} %{{y:.3f}}"
                        "<extra></extra>",
                    ),
                    row=r,
                    col=c,
                )
        fig.update_yaxes(title_text=_metric_name(metric), row=r, col=1)
    fig.update_layout(barmode="group", title=title, legend_title_text="whitening")
    return apply_style(fig, style=style, column="double", height=320 * len(metrics) + 80)


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
    style: Style = "screen",
) -> go.Figure:
    """STS correlation of one pooling kind at each layer 0..L: a panel per task, line per model."""
    frame = table[
        (table["probe"] == probe)
        & table["layer"].notna()
        & (table["split"] == split)
        & (table["metric"] == metric)
        & table["control"].isin(list(controls))
    ]
    frame = frame.assign(variant=_variant_labels(frame))
    tasks = _in_order(frame["task"])
    models = _in_order(frame["model"])
    variants = _in_order(frame["variant"])
    fig = make_subplots(
        rows=1,
        cols=max(len(tasks), 1),
        shared_yaxes=True,
        column_titles=[_TASK_NAMES.get(t, t) for t in tasks],
        horizontal_spacing=0.04,
    )
    dashes = ("solid", "dash", "dot", "dashdot")
    for c, task in enumerate(tasks, start=1):
        for m, model in enumerate(models):
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
                        line={"color": color_for(m), "dash": dashes[v % len(dashes)]},
                        hovertemplate=f"{name}<br>layer %{{x}}: %{{y:.2f}}<extra></extra>",
                    ),
                    row=1,
                    col=c,
                )
        fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1, row=1, col=c)
    fig.update_yaxes(title_text=_metric_name(metric), row=1, col=1)
    fig.update_layout(title=f"{probe} pooling per layer, {split}: {_metric_name(metric)}")
    return apply_style(fig, style=style, column="double", height=420)


def embeddings_figures(table: pd.DataFrame, *, style: Style = "screen") -> dict[str, go.Figure]:
    """Every figure the table supports, by file name (``embeddings_sts_stsb``, ...)."""
    figures: dict[str, go.Figure] = {}
    splits = _in_order(table["split"])
    split = "test" if "test" in splits else (splits[-1] if splits else "test")
    for task in _in_order(table["task"]):
        if ((table["task"] == task) & (table["metric"] == "spearman")).any():
            figures[figure_name("embeddings_sts", task)] = sts_bars(
                table, task=task, split=split, style=style
            )
    layered = table[table["layer"].notna() & (table["metric"] == "spearman")]
    for probe in ("mean", "mean_nospecial", "cls"):
        if layered[layered["probe"] == probe]["layer"].nunique() > 1:
            suffix = "" if probe == "mean" else f"_{probe}"
            figures[f"embeddings_layers{suffix}"] = layer_curves(
                table, probe=probe, split=split, style=style
            )
    iso = table[table["metric"] == "avg_cosine"]
    if not iso.empty:
        task = "stsb" if (iso["task"] == "stsb").any() else iso["task"].iloc[0]
        iso_split = "test" if (iso["split"] == "test").any() else iso["split"].iloc[0]
        figures["embeddings_isotropy"] = isotropy_bars(
            table, task=task, split=iso_split, style=style
        )
    return figures
