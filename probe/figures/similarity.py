"""Figures of the similarity stage, from its tables alone (``cka``, ``attention``).

- ``cka_<model>``: layer x layer CKA map of one model (unbiased and biased side by side), the
  random baseline in the title;
- ``cka_by_layer``: CKA of layer l of each model with layer l of the reference model
  (pretrained vs fine-tuned vs scratch), dotted lines at the random baseline;
- ``cka_checkpoints``: the same for checkpoints, one line per layer against the training step;
- ``attention_<model>``: layer x head maps of entropy, weight on [CLS], [SEP] and punctuation,
  and the dependency accuracy over all relations;
- ``attention_relations_<model>``: best head per relation against the best fixed offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, color_for

__all__ = [
    "attention_figures",
    "attention_heatmaps",
    "best_head_bars",
    "cka_by_layer",
    "cka_figures",
    "cka_heatmap",
    "cka_over_checkpoints",
    "similarity_figures",
]

Style = Literal["screen", "paper"]
ESTIMATORS = {"cka_unbiased": "unbiased", "cka_biased": "biased"}
HEAD_MEASURES = {
    "entropy": "entropy",
    "attn_cls": "on [CLS]",
    "attn_sep": "on [SEP]",
    "attn_punct": "on punct.",
    "dep_accuracy": "dep. accuracy",
}
RELATIONS = ("nsubj", "obj", "det", "amod", "case", "advmod", "aux", "mark", "conj", "compound")


def _real(cka: pd.DataFrame) -> pd.DataFrame:
    return cka[cka["control"] == "task"]


def _within(real: pd.DataFrame) -> pd.Series:
    """Rows comparing a model with itself. With several runs combined, ``model`` is labelled
    ``<run> · <model>`` and the model's own name is in ``model_name`` (``model_b`` stays bare)."""
    own = real["model_name"] if "model_name" in real else real["model"]
    return own.astype("string") == real["model_b"].astype("string")


def _baseline(cka: pd.DataFrame, metric: str) -> float:
    values = cka[(cka["control"] == "random") & (cka["metric"] == metric)]["value"]
    return float(values.mean()) if len(values) else float("nan")


def cka_heatmap(cka: pd.DataFrame, model: str, *, style: Style = "screen") -> go.Figure:
    """Layer x layer CKA of ``model`` with itself, unbiased and biased panels."""
    real = _real(cka)
    within = real[_within(real) & (real["model"] == model)]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=[
            f"{name} (random {_baseline(cka, metric):+.3f})" for metric, name in ESTIMATORS.items()
        ],
    )
    for col, metric in enumerate(ESTIMATORS, start=1):
        grid = within[within["metric"] == metric].pivot_table(
            index="layer", columns="layer_b", values="value"
        )
        fig.add_trace(
            go.Heatmap(
                z=grid.values,
                x=grid.columns.astype(int),
                y=grid.index.astype(int),
                zmin=0,
                zmax=1,
                coloraxis="coloraxis",
                text=np.round(grid.values, 2),
                texttemplate="%{text}",
                hovertemplate="layer %{y} vs %{x}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        title=f"Linear CKA between layers: {model}",
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "CKA"}},
    )
    fig.update_xaxes(title_text="layer", dtick=1)
    fig.update_yaxes(title_text="layer", dtick=1, col=1)
    fig.update_yaxes(dtick=1, col=2)
    return apply_style(fig, style=style, column="double", height=380 if style == "screen" else 300)


def _same_layer(cka: pd.DataFrame) -> pd.DataFrame:
    real = _real(cka)
    across = real[~_within(real) & (real["layer"] == real["layer_b"])]
    return across


def cka_by_layer(cka: pd.DataFrame, *, style: Style = "screen") -> go.Figure:
    """CKA of layer l of each model with layer l of the reference, per estimator."""
    across = _same_layer(cka)
    reference = across["model_b"].iloc[0]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=list(ESTIMATORS.values()))
    for col, metric in enumerate(ESTIMATORS, start=1):
        part = across[across["metric"] == metric]
        for index, model in enumerate(part["model"].unique()):
            rows = part[part["model"] == model].sort_values("layer")
            fig.add_trace(
                go.Scatter(
                    x=rows["layer"].astype(int),
                    y=rows["value"],
                    mode="lines+markers",
                    name=str(model),
                    legendgroup=str(model),
                    showlegend=col == 1,
                    line={"color": color_for(index)},
                    hovertemplate=f"{model}, layer %{{x}}: %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.add_hline(
            y=_baseline(cka, metric),
            line={"dash": "dash", "color": "#444444", "width": 1.5},
            annotation_text="random",
            annotation_position="top left",
            row=1,
            col=col,
        )
    fig.update_layout(title=f"CKA with the same layer of {reference}")
    fig.update_xaxes(title_text="layer", dtick=1)
    low = min(-0.05, float(across["value"].min()) - 0.05)
    fig.update_yaxes(range=[low, 1.02])
    fig.update_yaxes(title_text="CKA", col=1)
    return apply_style(fig, style=style, column="double")


def _steps(cka: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(cka["checkpoint"], errors="coerce")


def cka_over_checkpoints(
    cka: pd.DataFrame, *, metric: str = "cka_unbiased", style: Style = "screen"
) -> go.Figure:
    """CKA with the reference against the training step, one line per layer."""
    across = _same_layer(cka)
    across = across[(across["metric"] == metric)].assign(step=_steps(across))
    across = across.dropna(subset=["step"])
    reference = across["model_b"].iloc[0]
    fig = go.Figure()
    for index, layer in enumerate(sorted(across["layer"].unique())):
        rows = across[across["layer"] == layer].sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=rows["step"],
                y=rows["value"],
                mode="lines+markers",
                name=f"layer {int(layer)}",
                line={"color": color_for(index)},
                hovertemplate=f"layer {int(layer)}, step %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(title=f"CKA ({ESTIMATORS[metric]}) with {reference} over training")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="CKA")
    return apply_style(fig, style=style)


def attention_heatmaps(
    attention: pd.DataFrame, model: str, *, style: Style = "screen"
) -> go.Figure:
    """Layer x head maps of every head measure of ``model``.

    The shares and accuracies share one 0..1 colour scale (right); entropy, in nats, has its own
    (below its panel).
    """
    heads = attention[(attention["probe"] == "attention") & (attention["model"] == model)]
    measures = [m for m in HEAD_MEASURES if (heads["metric"] == m).any()]
    fig = make_subplots(
        rows=1,
        cols=len(measures),
        shared_yaxes=True,
        horizontal_spacing=0.025,
        subplot_titles=[HEAD_MEASURES[m] for m in measures],
    )
    for col, metric in enumerate(measures, start=1):
        part = heads[heads["metric"] == metric]
        if metric == "dep_accuracy":
            part = part[part["relation"] == "all"]
        grid = part.pivot_table(index="layer", columns="head", values="value")
        fig.add_trace(
            go.Heatmap(
                z=grid.values,
                x=grid.columns.astype(int),
                y=grid.index.astype(int),
                coloraxis="coloraxis2" if metric == "entropy" else "coloraxis",
                hovertemplate=f"layer %{{y}}, head %{{x}}: %{{z:.3f}}<extra>{metric}</extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_layout(
        title=f"Attention heads: {model}",
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "share"}},
        coloraxis2={
            "colorscale": "Cividis",
            "colorbar": {
                "title": {"text": "nats", "side": "right"},
                "orientation": "h",
                "x": 0.5 / len(measures),
                "xanchor": "center",
                "len": 1.0 / len(measures),
                "y": -0.36,
                "yanchor": "top",
                "thickness": 8,
            },
        },
    )
    fig.update_xaxes(title_text="head", dtick=2)
    fig.update_yaxes(title_text="layer", dtick=1, col=1)
    fig.update_yaxes(autorange="reversed")
    apply_style(fig, style=style, column="double", height=400 if style == "screen" else 260)
    return fig.update_layout(margin_b=110 if style == "screen" else 80)


def best_head_bars(attention: pd.DataFrame, model: str, *, style: Style = "screen") -> go.Figure:
    """Best head per relation (label: layer-head) against the best fixed offset."""
    from probe.similarity.summary import best_heads

    best = best_heads(attention)
    best = best[best["model"] == model].set_index("relation")
    order = [r for r in ("all", *RELATIONS) if r in best.index]
    best = best.loc[order]
    series = [
        ("best head", "accuracy", [f"{int(r.layer)}-{int(r['head'])}" for _, r in best.iterrows()],
         "head"),
        ("best fixed offset", "offset_accuracy", [f"{int(k):+d}" for k in best["offset"]],
         "offset"),
    ]  # fmt: skip
    fig = go.Figure()
    for index, (name, column, labels, kind) in enumerate(series):
        fig.add_trace(
            go.Bar(
                x=order,
                y=100 * best[column],
                name=name,
                marker_color=color_for(index),
                text=labels,
                textposition="outside",
                hovertemplate=f"%{{x}}: {kind} %{{text}}, %{{y:.1f}}%<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Most-attended word is the head: {model} (labels: layer-head, offset)",
        barmode="group",
        bargap=0.25,
    )
    fig.update_xaxes(title_text="relation (UD)")
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 108])
    return apply_style(fig, style=style, column="double")


def cka_figures(cka: pd.DataFrame, *, style: Style = "screen") -> dict[str, go.Figure]:
    """Every CKA figure the ``cka`` table supports."""
    figures: dict[str, go.Figure] = {}
    real = _real(cka)
    for model in real[_within(real)]["model"].unique():
        figures[figure_name("cka", model)] = cka_heatmap(cka, str(model), style=style)
    across = _same_layer(cka)
    if not across.empty:
        figures["cka_by_layer"] = cka_by_layer(cka, style=style)
        if _steps(across).nunique() > 1:
            figures["cka_checkpoints"] = cka_over_checkpoints(cka, style=style)
    return figures


def attention_figures(attention: pd.DataFrame, *, style: Style = "screen") -> dict[str, go.Figure]:
    """Every attention figure the ``attention`` table supports."""
    figures: dict[str, go.Figure] = {}
    for model in attention[attention["probe"] == "attention"]["model"].unique():
        figures[figure_name("attention", model)] = attention_heatmaps(
            attention, str(model), style=style
        )
        figures[figure_name("attention_relations", model)] = best_head_bars(
            attention, str(model), style=style
        )
    return figures


def similarity_figures(
    tables: Mapping[str, pd.DataFrame], *, style: Style = "screen"
) -> dict[str, go.Figure]:
    """Every similarity figure the given tables (``cka``, ``attention``) support."""
    figures: dict[str, go.Figure] = {}
    if tables.get("cka") is not None and not tables["cka"].empty:
        figures.update(cka_figures(tables["cka"], style=style))
    if tables.get("attention") is not None and not tables["attention"].empty:
        figures.update(attention_figures(tables["attention"], style=style))
    return figures
