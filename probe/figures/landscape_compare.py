"""Figures that compare pretrained and from-scratch fine-tuning (Hao et al. 2019), from the
landscape tables' ``pair``/``init`` columns:

- :func:`convergence_figure`: training-subset loss against the step, every job on one plot,
  colour = pair, pretrained solid and scratch dashed (the paper's Figure 1);
- :func:`basins_figure`: 2-D loss maps of the two inits side by side (rows: pairs), on one
  shared log colour scale, one seed per arm ("basin vs canyon");
- :func:`layers_figure`: relative weight change per layer, and the training loss when only
  that layer is put back to its initial weights (mean and spread over seeds);
- :func:`layer_curves_figure`: the per-layer curves from initial (alpha 0) to final (alpha 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.landscape import _log_ticks
from probe.figures.style import apply_style, series_colors

__all__ = ["basins_figure", "convergence_figure", "layer_curves_figure", "layers_figure"]

_INIT_DASH = {"pretrained": "solid", "scratch": "dash"}
_INITS = ("pretrained", "scratch")


def _labelled(table: pd.DataFrame) -> pd.DataFrame:
    return table.dropna(subset=["pair", "init"]) if {"pair", "init"} <= set(table) else table[:0]


def _pairs(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["pair"].astype(str)))


def convergence_figure(convergence: pd.DataFrame, *, style: str = "screen") -> go.Figure:
    """Training-subset loss (log) against the step: colour = pair, solid pretrained, dashed
    scratch, one line per seed; dotted horizontal lines at the ladder's thresholds."""
    table = _labelled(convergence)
    curve = table[table["metric"] == "subset_loss"].dropna(subset=["step"])
    palette = series_colors(_pairs(table))
    fig = go.Figure()
    shown: set[tuple[str, str]] = set()
    for (pair, init, model), part in curve.groupby(["pair", "init", "model"], sort=True):
        part = part.sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=part["step"],
                y=part["value"],
                mode="lines",
                name=f"{pair} · {init}",
                legendgroup=f"{pair} · {init}",
                showlegend=(pair, init) not in shown,
                line={"color": palette[str(pair)], "dash": _INIT_DASH.get(str(init), "dot")},
                hovertext=str(model),
            )
        )
        shown.add((pair, init))
    for threshold in sorted(table["threshold"].dropna().unique()):
        fig.add_hline(y=float(threshold), line={"dash": "dot", "width": 1, "color": "grey"})
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="training-subset loss", type="log")
    fig.update_layout(
        title="Fine-tuning loss: pretrained (solid) vs from scratch (dashed)",
        legend={"orientation": "h", "y": -0.2, "x": 0},
    )
    apply_style(fig, style=style, column="single")  # type: ignore[arg-type]
    fig.update_layout(margin={"b": 110})
    return fig


def _first_job(table: pd.DataFrame, pair: str, init: str) -> pd.DataFrame:
    mine = table[(table["pair"].astype(str) == pair) & (table["init"].astype(str) == init)]
    if mine.empty:
        return mine
    return mine[mine["model"].astype(str) == sorted(mine["model"].astype(str).unique())[0]]


def basins_figure(
    plane: pd.DataFrame, kind: str = "random", *, split: str = "train", style: str = "screen"
) -> go.Figure:
    """Loss around the final weights, pretrained and scratch side by side (rows: pairs), on one
    log colour scale shared by every panel; the first job (by name) of each arm."""
    table = _labelled(plane)
    table = table[
        (table["plane"] == kind) & (table["metric"] == "loss") & (table["split"] == split)
    ]
    pairs = _pairs(table)
    cells = {(p, i): _first_job(table, p, i) for p in pairs for i in _INITS}
    titles = [
        f"{p} · {i}" + (f" ({cells[p, i]['model'].iloc[0]})" if not cells[p, i].empty else "")
        for p in pairs
        for i in _INITS
    ]
    fig = make_subplots(rows=max(len(pairs), 1), cols=2, subplot_titles=titles)
    values = np.log10(np.clip(table["value"].to_numpy(float), 1e-12, None))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    for r, pair in enumerate(pairs, start=1):
        for c, init in enumerate(_INITS, start=1):
            cell = cells[pair, init]
            if cell.empty:
                continue
            grid = cell.pivot_table(index="y", columns="x", values="value")
            fig.add_trace(
                go.Contour(
                    x=grid.columns.to_numpy(float),
                    y=grid.index.to_numpy(float),
                    z=np.log10(np.clip(grid.to_numpy(float), 1e-12, None)),
                    coloraxis="coloraxis",
                    contours={"start": low, "end": high, "size": (high - low) / 20 or 1},
                    line={"width": 0.5, "color": "rgba(255,255,255,0.6)"},
                    name=f"{pair} {init}",
                ),
                row=r,
                col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=[0],
                    y=[0],
                    mode="markers",
                    showlegend=False,
                    marker={"symbol": "star", "size": 10, "color": "white"},
                ),
                row=r,
                col=c,
            )
    ticks, labels = _log_ticks(low, high)
    fig.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": low,
            "cmax": high,
            "colorbar": {"title": {"text": "loss"}, "tickvals": ticks, "ticktext": labels},
        },
        title=f"Basin vs canyon: {split} loss in the {kind} plane around the fine-tuned weights",
    )
    fig.update_xaxes(title_text="direction 1" if kind == "random" else "PC 1")
    fig.update_yaxes(title_text="direction 2" if kind == "random" else "PC 2", col=1)
    apply_style(fig, style=style, column="double", height=330 * max(len(pairs), 1) + 120)  # type: ignore[arg-type]
    return fig


def _mean_spread(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = table.groupby(by, sort=False)["value"]
    return grouped.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, n="size")


def layers_figure(
    layers: pd.DataFrame, *, split: str = "train", style: str = "screen"
) -> go.Figure:
    """Per part: relative weight change (left) and the loss with only that part at its initial
    weights (right, alpha 0); mean over seeds with error bars (sample std)."""
    table = _labelled(layers)
    parts = list(dict.fromkeys(table["part"].astype(str)))
    palette = series_colors(_pairs(table))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "relative weight change ‖θ₁−θ₀‖/‖θ₀‖",
            f"{split} loss, only this part at θ₀",
        ),
    )
    change = table[table["metric"] == "relative_change"]
    reset = table[(table["metric"] == "loss") & (table["split"] == split) & (table["alpha"] == 0)]
    for col, part_table in enumerate((change, reset), start=1):
        stats = _mean_spread(part_table, ["pair", "init", "part"]).reset_index()
        for (pair, init), rows in stats.groupby(["pair", "init"], sort=True):
            rows = rows.set_index("part").reindex(parts).dropna(subset=["mean"])
            fig.add_trace(
                go.Scatter(
                    x=rows.index,
                    y=rows["mean"],
                    error_y={"type": "data", "array": rows["std"], "visible": True},
                    mode="lines+markers",
                    name=f"{pair} · {init}",
                    legendgroup=f"{pair} · {init}",
                    showlegend=col == 1,
                    line={"color": palette[str(pair)], "dash": _INIT_DASH.get(str(init), "dot")},
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="part (0 = embeddings)")
    fig.update_layout(
        title="Layer invariance: how far each layer moved, and how much the fit needs it",
        legend={"orientation": "h", "y": -0.25, "x": 0},
    )
    apply_style(fig, style=style, column="double")  # type: ignore[arg-type]
    fig.update_layout(margin={"b": 120})
    return fig


def layer_curves_figure(
    layers: pd.DataFrame, *, split: str = "train", style: str = "screen"
) -> go.Figure:
    """Loss when only one part moves from initial (0) to final (1) weights; one panel per arm
    (its first job), one line per part, darker = deeper."""
    table = _labelled(layers)
    curves = table[(table["metric"] == "loss") & (table["split"] == split)].dropna(subset=["alpha"])
    arms = [(p, i) for p in _pairs(curves) for i in _INITS]
    arms = [a for a in arms if not _first_job(curves, *a).empty]
    fig = make_subplots(
        rows=1, cols=max(len(arms), 1), subplot_titles=[f"{p} · {i}" for p, i in arms]
    )
    shown: set[str] = set()
    # one shade per part name in every panel: the deepest part of the deepest model is darkest
    every = list(dict.fromkeys(curves["part"].astype(str)))
    order = sorted(every, key=lambda p: (p == "head", int(p.split(".")[1]) if "." in p else 0))
    shades = {p: int(200 - 170 * k / max(len(order) - 1, 1)) for k, p in enumerate(order)}
    for c, (pair, init) in enumerate(arms, start=1):
        cell = _first_job(curves, pair, init)
        parts = list(dict.fromkeys(cell["part"].astype(str)))
        for part in parts:
            line = cell[cell["part"].astype(str) == part].sort_values("alpha")
            shade = shades[part]
            fig.add_trace(
                go.Scatter(
                    x=line["alpha"],
                    y=line["value"],
                    mode="lines+markers",
                    name=part,
                    legendgroup=part,
                    showlegend=part not in shown,
                    line={"color": f"rgb({shade},{shade},{min(255, shade + 55)})"},
                ),
                row=1,
                col=c,
            )
            shown.add(part)
    fig.update_xaxes(title_text="α")
    fig.update_yaxes(title_text=f"{split} loss", col=1)
    fig.update_layout(
        title="Only one part moved: lerp(θ₀, θ₁, α) for that part, every other part final (α = 1)"
    )
    apply_style(fig, style=style, column="double")  # type: ignore[arg-type]
    return fig
