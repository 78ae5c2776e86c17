"""Figures of the landscape stage, built from its result tables only.

- :func:`curves_figure`: loss/accuracy of each checkpoint against the training step;
- :func:`line_figure`: loss/accuracy along ``theta_0 + a (theta_1 - theta_0)``, all runs on one
  plot (colour = run, dash = split);
- :func:`contour_figure`: 2-D loss maps, one column per run and one row per split, on one shared
  (log) colour scale and shared contour levels, with the training path drawn on PCA planes and
  the sharpness numbers in the panel titles;
- :func:`surface_figure`: the same surfaces in 3-D, side by side on shared z and colour scales;
- :func:`sharpness_figure`: the sharpness table as grouped bars.

Loss is shown on a log scale: a from-scratch run's loss far from its minimum is orders of
magnitude above a pretrained one's, and a linear scale would flatten one of them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.names import figure_name
from probe.figures.style import apply_style, series_colors, wrap_label

__all__ = [
    "contour_figure",
    "curves_figure",
    "landscape_figures",
    "line_figure",
    "sharpness_figure",
    "surface_figure",
]

_DASH = {"train": "solid", "dev": "dash", "test": "dot"}
_PATTERN = {"train": "", "dev": "/", "test": "."}
_PLANE_AXES = {
    "random": ("filter-normalised direction 1", "direction 2"),
    "pca": ("PC 1", "PC 2"),
}
_LEVELS = 20
#: Runs beyond which one-column-per-run maps become unreadable (the basins figure remains).
_MAX_PANELS = 6


def _models(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["model"].astype(str)))


def _splits(table: pd.DataFrame) -> list[str]:
    order = {"train": 0, "dev": 1, "test": 2}
    return sorted(dict.fromkeys(table["split"].dropna().astype(str)), key=lambda s: order.get(s, 9))


def _log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 1-2-5 steps of the loss (1-2-...-9 when that gives under three ticks,
    e.g. a loss between 0.3 and 0.75), placed on the log10 scale."""
    for mantissas in ((1, 2, 5), tuple(range(1, 10))):
        values = []
        for exponent in range(math.floor(low) - 1, math.ceil(high) + 1):
            for mantissa in mantissas:
                value = mantissa * 10.0**exponent
                if low <= math.log10(value) <= high:
                    values.append(value)
        if len(values) >= 3:
            break
    return [math.log10(v) for v in values], [f"{v:g}" for v in values]


def _log_loss_axis(fig: go.Figure, loss: pd.Series) -> None:
    """Log-scale loss axis of panel (1, 1) labelled at 1-2-5 steps: plotly's own labels for a
    range under a decade are its minor "2 3 4 5" digits, drawn at two thirds of the font size."""
    low, high = _log_range(loss)
    ticks, text = _log_ticks(low, high)
    fig.update_yaxes(type="log", tickvals=[10**t for t in ticks], ticktext=text, row=1, col=1)


def _sharpness_label(sharpness: pd.DataFrame | None, model: str, split: str) -> str:
    if sharpness is None or sharpness.empty:
        return ""
    mine = sharpness[
        (sharpness["model"].astype(str) == model) & (sharpness["split"].astype("string") == split)
    ]
    parts = []
    eig = mine[mine["metric"] == "hessian_top_eigenvalue"]
    if not eig.empty:
        parts.append(f"λmax {eig['value'].iloc[0]:.3g}")
    rise = mine[mine["metric"] == "loss_increase_mean"]
    if not rise.empty and "radius" in rise:
        top = rise.loc[rise["radius"].astype(float).idxmax()]
        parts.append(f"ΔL(r={float(top['radius']):g}) {top['value']:.3g}")
    return " · ".join(parts)


def curves_figure(
    trajectory: pd.DataFrame, *, colors: dict[str, str] | None = None, style: str = "screen"
) -> go.Figure:
    """Loss (log scale) and accuracy of every saved checkpoint against the training step."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    steps = trajectory.dropna(subset=["step"])
    palette = series_colors(_models(trajectory), colors)
    for model in _models(trajectory):
        for split in _splits(trajectory):
            for col, metric in enumerate(("loss", "accuracy"), start=1):
                part = steps[
                    (steps["model"].astype(str) == model)
                    & (steps["split"] == split)
                    & (steps["metric"] == metric)
                ].sort_values("step")
                fig.add_trace(
                    go.Scatter(
                        x=part["step"],
                        y=part["value"],
                        mode="lines+markers",
                        name=f"{model} {split}",
                        legendgroup=f"{model} {split}",
                        showlegend=col == 1,
                        line={"color": palette[model], "dash": _DASH.get(split, "solid")},
                    ),
                    row=1,
                    col=col,
                )
    fig.update_xaxes(title_text="training step")
    _log_loss_axis(fig, steps[steps["metric"] == "loss"]["value"])
    fig.update_layout(
        title="Loss and accuracy on the fixed batches at each checkpoint",
        legend={"orientation": "h", "y": -0.22, "x": 0},
    )
    apply_style(fig, style=style, column="double")  # type: ignore[arg-type]
    fig.update_layout(margin={"t": 80, "b": 110})
    return fig


def line_figure(
    line: pd.DataFrame,
    sharpness: pd.DataFrame | None = None,
    *,
    colors: dict[str, str] | None = None,
    style: str = "screen",
) -> go.Figure:
    """Loss (log scale) and accuracy along the line from the initial to the final weights.

    The train-split sharpness of each run goes in the subtitle.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    labels = []
    palette = series_colors(_models(line), colors)
    for model in _models(line):
        label = _sharpness_label(sharpness, model, "train")
        if label:
            labels.append(f"{model}: {label}")
        for split in _splits(line):
            for col, metric in enumerate(("loss", "accuracy"), start=1):
                part = line[
                    (line["model"].astype(str) == model)
                    & (line["split"] == split)
                    & (line["metric"] == metric)
                ].sort_values("alpha")
                fig.add_trace(
                    go.Scatter(
                        x=part["alpha"],
                        y=part["value"],
                        mode="lines+markers",
                        name=f"{model} {split}",
                        legendgroup=f"{model} {split}",
                        showlegend=col == 1,
                        line={"color": palette[model], "dash": _DASH.get(split, "solid")},
                    ),
                    row=1,
                    col=col,
                )
    for col in (1, 2):
        for alpha, text in ((0.0, "θ₀"), (1.0, "θ₁")):
            fig.add_vline(
                x=alpha,
                line={"color": "#888888", "width": 1, "dash": "dot"},
                annotation_text=text,
                annotation_position="bottom right",
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="α   (θ = θ₀ + α (θ₁ − θ₀))")
    _log_loss_axis(fig, line[line["metric"] == "loss"]["value"])
    title = {"text": "1-D interpolation from the initial (θ₀) to the fine-tuned (θ₁) weights"}
    if labels:  # a subtitle, not <sup>: that prints at 70% of the title's size, under 8 pt
        title["subtitle"] = {"text": "train sharpness: " + "<br>".join(labels)}
    fig.update_layout(title=title, legend={"orientation": "h", "y": -0.3, "x": 0})
    screen = style == "screen"
    apply_style(
        fig,
        style=style,  # type: ignore[arg-type]
        column="double",
        height=(440 if screen else 300) + (18 if screen else 13) * len(labels),
    )
    # The title block (title, one sharpness line per run) at the top, clear of the panel titles.
    fig.update_layout(
        title={"yref": "container", "y": 0.99, "yanchor": "top"},
        margin={"t": (70 if screen else 50) + (18 if screen else 13) * len(labels), "b": 130},
    )
    return fig


def _grid(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xs, ys, z)`` with ``z[j, i]`` the value at ``(xs[i], ys[j])`` (plotly's layout)."""
    pivot = part.pivot_table(index="y", columns="x", values="value", aggfunc="first")
    return pivot.columns.to_numpy(float), pivot.index.to_numpy(float), pivot.to_numpy(float)


def _log_range(values: pd.Series) -> tuple[float, float]:
    positive = values[values > 0]
    if positive.empty:
        return 0.0, 1.0
    low, high = math.log10(positive.min()), math.log10(positive.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def contour_figure(
    plane: pd.DataFrame,
    kind: str = "random",
    *,
    trajectory: pd.DataFrame | None = None,
    sharpness: pd.DataFrame | None = None,
    style: str = "screen",
) -> go.Figure:
    """2-D loss contours (rows: splits, columns: runs) on one shared log colour scale.

    ``trajectory`` (the ``landscape_trajectory`` table, with ``x``/``y``) is drawn on PCA planes.
    """
    part = plane[(plane["plane"] == kind) & (plane["metric"] == "loss")]
    models, splits = _models(part), _splits(part)
    titles = []
    for split in splits:
        for model in models:
            label = _sharpness_label(sharpness, model, split)
            titles.append(wrap_label(f"{model} · {split}") + (f"<br>{label}" if label else ""))
    fig = make_subplots(
        rows=len(splits),
        cols=len(models),
        subplot_titles=titles,
        horizontal_spacing=0.08,
        vertical_spacing=0.24,  # room for the subplot titles (run, model · split, sharpness)
    )
    low, high = _log_range(part["value"])
    size = (high - low) / _LEVELS
    for r, split in enumerate(splits, start=1):
        for c, model in enumerate(models, start=1):
            cell = part[(part["model"].astype(str) == model) & (part["split"] == split)]
            if cell.empty:
                continue
            xs, ys, z = _grid(cell)
            fig.add_trace(
                go.Contour(
                    x=xs,
                    y=ys,
                    z=np.log10(np.clip(z, 1e-12, None)),
                    coloraxis="coloraxis",
                    autocontour=False,
                    contours={
                        "start": low,
                        "end": high,
                        "size": size,
                        "coloring": "heatmap",
                        "showlines": True,
                    },
                    line={"width": 0.5, "color": "rgba(255,255,255,0.6)"},
                    customdata=z,
                    hovertemplate="x %{x:.3g}<br>y %{y:.3g}<br>loss %{customdata:.4g}"
                    "<extra></extra>",
                    name=f"{model} {split}",
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
                    marker={
                        "symbol": "star",
                        "size": 11,
                        "color": "white",
                        "line": {"color": "black", "width": 1},
                    },
                    hovertext="trained model",
                    hoverinfo="text",
                ),
                row=r,
                col=c,
            )
            if kind == "pca" and trajectory is not None and "x" in trajectory:
                path = trajectory[
                    (trajectory["model"].astype(str) == model)
                    & (trajectory["split"] == split)
                    & (trajectory["metric"] == "loss")
                ].dropna(subset=["x", "y"])
                path = path.sort_values("step", na_position="last")
                fig.add_trace(
                    go.Scatter(
                        x=path["x"],
                        y=path["y"],
                        mode="lines+markers",
                        showlegend=False,
                        line={"color": "white", "width": 2},
                        marker={
                            "size": 5,
                            "color": "white",
                            "line": {"color": "black", "width": 1},
                        },
                        text=path["checkpoint"],
                        hovertemplate="%{text}<extra></extra>",
                    ),
                    row=r,
                    col=c,
                )
    ticks, text = _log_ticks(low, high)
    fig.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": low,
            "cmax": high,
            "colorbar": {"title": {"text": "loss"}, "tickvals": ticks, "ticktext": text},
        }
    )
    x_title, y_title = _PLANE_AXES.get(kind, ("x", "y"))
    for c, model in enumerate(models, start=1):
        # Each run has its own PCA plane, so its own explained variance.
        x_text, y_text = x_title, y_title
        mine = part[part["model"].astype(str) == model]
        if kind == "pca" and "pc1_variance" in mine and mine["pc1_variance"].notna().any():
            x_text += f" ({mine['pc1_variance'].dropna().iloc[0]:.0%} of variance)"
            y_text += f" ({mine['pc2_variance'].dropna().iloc[0]:.0%})"
        fig.update_xaxes(title_text=x_text, row=len(splits), col=c)
        fig.update_yaxes(title_text=y_text, col=c)
    what = "random filter-normalised plane" if kind == "random" else "PCA plane of the trajectory"
    fig.update_layout(title=f"Loss around the fine-tuned weights: {what}")
    apply_style(fig, style=style, column="double", height=360 * len(splits) + 120)  # type: ignore[arg-type]
    lines = max((t.count("<br>") + 1 for t in titles), default=1)
    fig.update_layout(margin={"t": 85 + 17 * lines})  # the title clear of the panel titles
    return fig


def surface_figure(
    plane: pd.DataFrame, kind: str = "random", *, split: str = "train", style: str = "screen"
) -> go.Figure:
    """3-D loss surfaces of one split, side by side on shared (log) z and colour scales.

    The height is log10(loss) on a linear axis labelled in loss (plotly's 3-D log axes print no
    labels for a range under a decade), and each scene keeps a margin for its z-axis labels and
    title, which a scene filling its whole cell would clip.
    """
    part = plane[(plane["plane"] == kind) & (plane["metric"] == "loss") & (plane["split"] == split)]
    models = _models(part)
    # At most two scenes per row: a 3-D box narrower than ~400 px has no room for its labels.
    cols = min(max(len(models), 1), 2)
    rows = -(-max(len(models), 1) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[wrap_label(m) for m in models],
        specs=[[{"type": "scene"}] * cols for _ in range(rows)],
        horizontal_spacing=0.02,
        vertical_spacing=0.08,
    )
    low, high = _log_range(part["value"])
    ticks, text = _log_ticks(low, high)
    for k, model in enumerate(models):
        xs, ys, z = _grid(part[part["model"].astype(str) == model])
        height = np.log10(np.clip(z, 1e-12, None))
        fig.add_trace(
            go.Surface(
                x=xs,
                y=ys,
                z=height,
                surfacecolor=height,
                coloraxis="coloraxis",
                customdata=z,
                hovertemplate="x %{x:.3g}<br>y %{y:.3g}<br>loss %{customdata:.4g}<extra></extra>",
                name=model,
            ),
            row=k // cols + 1,
            col=k % cols + 1,
        )
    fig.update_layout(
        coloraxis={
            "colorscale": "Viridis",
            "cmin": low,
            "cmax": high,
            "colorbar": {
                "title": {"text": "loss"},
                "tickvals": ticks,
                "ticktext": text,
                "len": 0.8 / rows,
                "thickness": 12,
            },
        }
    )
    x_title, y_title = _PLANE_AXES.get(kind, ("x", "y"))
    pad = 0.05 * (high - low)
    fig.update_scenes(
        zaxis={
            "range": [low - pad, high + pad],
            "tickvals": ticks,
            "ticktext": text,
            # The z title is left out: at any camera that keeps the whole box in view, plotly
            # draws it outside the scene; the subtitle says what z is.
            "title": {"text": ""},
        },
        xaxis={"title": {"text": "x"}},
        yaxis={"title": {"text": "y"}},
        aspectmode="manual",
        aspectratio={"x": 1, "y": 1, "z": 0.75},
        camera={"eye": {"x": 1.7, "y": -1.7, "z": 1.0}, "center": {"x": 0, "y": 0, "z": -0.1}},
    )
    # Scene domains inside their cells (room for tick labels), each below its subplot title.
    width, tall = 0.9 / cols, 1.0 / rows
    for k in range(len(models)):
        row, col = divmod(k, cols)
        left, top = 0.05 + col * (width + 0.01), 1.0 - row * tall
        fig.layout[f"scene{'' if k == 0 else k + 1}"].domain = {
            "x": [left, left + width - 0.05],
            "y": [top - tall + 0.02, top - 0.1 * tall],
        }
        fig.layout.annotations[k].update(y=top - 0.08 * tall, yanchor="bottom")
    fig.update_layout(
        title={
            "text": f"{split} loss surface, {kind} plane",
            "subtitle": {
                "text": f"x: {x_title}; y: {y_title}; z and colour: loss (log scale, shared)"
            },
        }
    )
    screen = style == "screen"
    lines = 2 if any("<br>" in wrap_label(m) for m in models) else 1
    apply_style(fig, style=style, column="double", height=(420 if screen else 300) * rows + 60)  # type: ignore[arg-type]
    fig.update_layout(margin={"t": (60 if screen else 45) + 17 * lines, "l": 10, "r": 10, "b": 10})
    return fig


def sharpness_figure(
    sharpness: pd.DataFrame,
    *,
    colors: dict[str, str] | None = None,
    style: str = "screen",
) -> go.Figure:
    """Top Hessian eigenvalue and mean loss rise per radius, one bar per run and split.

    Colour = split (the legend lists every split of any panel); numbers print in scientific
    notation (``1.5×10⁻⁴``, not plotly's SI ``150μ``).
    """
    panels: list[tuple[str, str, pd.DataFrame]] = []
    eig = sharpness[sharpness["metric"] == "hessian_top_eigenvalue"]
    if not eig.empty:
        panels.append(("top Hessian eigenvalue", "λmax", eig))
    rise = sharpness[sharpness["metric"] == "loss_increase_mean"]
    if not rise.empty:
        for radius in sorted(rise["radius"].astype(float).unique()):
            panels.append(
                (
                    f"mean loss rise, r = {radius:g}",
                    "loss increase",
                    rise[rise["radius"].astype(float) == radius],
                )
            )
    fig = make_subplots(
        rows=1,
        cols=max(len(panels), 1),
        subplot_titles=[t for t, _, _ in panels] or [""],
        horizontal_spacing=0.1,
    )
    palette = series_colors(_models(sharpness), colors)
    splits = _splits(sharpness)
    for c, (_, y_title, part) in enumerate(panels, start=1):
        for split in _splits(part):
            cell = part[part["split"] == split]
            fig.add_trace(
                go.Bar(
                    x=cell["model"].astype(str),
                    y=cell["value"],
                    name=f"{split} split",
                    legendgroup=split,
                    showlegend=False,
                    offsetgroup=split,
                    marker={
                        "color": [palette[m] for m in cell["model"].astype(str)],
                        "pattern": {"shape": _PATTERN.get(split, "x"), "fgcolor": "white"},
                    },
                    hovertemplate=f"%{{x}} · {split}: %{{y:.4g}}<extra></extra>",
                ),
                row=1,
                col=c,
            )
        fig.update_yaxes(title_text=y_title, row=1, col=c)
    for split in splits:  # legend keys: colour is the run (as in every figure), hatching the split
        fig.add_trace(
            go.Bar(
                x=[None],
                y=[None],
                name=f"{split} split",
                legendgroup=split,
                marker={
                    "color": "#777777",
                    "pattern": {"shape": _PATTERN.get(split, "x"), "fgcolor": "white"},
                },
            ),
            row=1,
            col=1,
        )
    fig.update_yaxes(exponentformat="power", showexponent="all")
    fig.update_layout(
        barmode="group",
        title="Sharpness of the fine-tuned optimum",
        legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"},
    )
    apply_style(fig, style=style, column="double")  # type: ignore[arg-type]
    fig.update_layout(margin={"b": 90, "l": 70})
    return fig


def landscape_figures(
    *,
    trajectory: pd.DataFrame,
    line: pd.DataFrame | None = None,
    plane: pd.DataFrame | None = None,
    sharpness: pd.DataFrame | None = None,
    layers: pd.DataFrame | None = None,
    convergence: pd.DataFrame | None = None,
    colors: dict[str, str] | None = None,
    style: str = "screen",
) -> dict[str, go.Figure]:
    """Every landscape figure the tables allow, by file name.

    A run keeps one colour in every figure: ``colors`` where given, else its place among the
    runs of all the tables. With more than :data:`_MAX_PANELS` runs the per-run 2-D and 3-D maps
    (one column per run) are left out; ``landscape_basins_<plane>`` then shows one seed per arm.
    """
    names = [trajectory] + [t for t in (line, plane, sharpness) if t is not None]
    colors = series_colors([m for table in names for m in _models(table)], colors)
    figures = {"landscape_curves": curves_figure(trajectory, colors=colors, style=style)}
    if line is not None and not line.empty:
        figures["landscape_1d"] = line_figure(line, sharpness, colors=colors, style=style)
    if plane is not None and not plane.empty and len(_models(plane)) <= _MAX_PANELS:
        for kind in dict.fromkeys(plane["plane"].astype(str)):
            figures[figure_name("landscape_2d", kind)] = contour_figure(
                plane, kind, trajectory=trajectory, sharpness=sharpness, style=style
            )
            split = "train" if (plane["split"] == "train").any() else _splits(plane)[0]
            figures[figure_name("landscape_3d", kind)] = surface_figure(
                plane, kind, split=split, style=style
            )
    if sharpness is not None and not sharpness.empty:
        figures["landscape_sharpness"] = sharpness_figure(sharpness, colors=colors, style=style)
    figures.update(_comparison_figures(plane, layers, convergence, style))
    return figures


def _comparison_figures(
    plane: pd.DataFrame | None,
    layers: pd.DataFrame | None,
    convergence: pd.DataFrame | None,
    style: str,
) -> dict[str, go.Figure]:
    """Pretrained vs scratch figures, where the tables carry ``pair``/``init`` labels."""
    from probe.figures import landscape_compare as compare

    def labelled(table: pd.DataFrame | None) -> bool:
        return table is not None and "init" in table and table["init"].notna().any()

    figures: dict[str, go.Figure] = {}
    if labelled(convergence):
        figures["landscape_convergence"] = compare.convergence_figure(convergence, style=style)
    if labelled(plane):
        for kind in dict.fromkeys(plane["plane"].astype(str)):
            figures[figure_name("landscape_basins", kind)] = compare.basins_figure(
                plane, kind, style=style
            )
    if labelled(layers):
        figures["landscape_layers"] = compare.layers_figure(layers, style=style)
        figures["landscape_layer_curves"] = compare.layer_curves_figure(layers, style=style)
    return figures
