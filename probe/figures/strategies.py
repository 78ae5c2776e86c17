"""Fine-tuning strategies compared: arms of fine-tuning jobs, each over seeds, per task.

Everything here comes from the training table (``strategy`` and ``arm`` columns; constant rows
``trainable_parameters``, ``total_parameters``, ``frozen_layers``, ``train_seconds``; per-layer
rows ``relative_weight_change`` and ``mix_weight`` at every evaluation).

- :func:`strategy_finals`: one row per fine-tuning job: its arm, strategy, seed, parameter
  counts, frozen layers, training seconds and the task's dev metric at the last step;
- :func:`strategy_table`: per task and arm, the mean and spread (min, max, sd) over seeds;
- figures per task: the dev metric against trainable parameters (log x; full fine-tuning as a
  reference line, as Houlsby et al. 2019 draw it), against the number of frozen layers (the
  freezing sweep), the learned scalar-mix weights per layer, and the relative weight change of
  each layer (one line per arm).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from probe.figures.names import figure_name
from probe.figures.probing import _band  # one look for seed bands in every figure
from probe.figures.style import apply_style, color_for

__all__ = [
    "main_metric",
    "strategy_arms",
    "strategy_figures",
    "strategy_finals",
    "strategy_table",
]

Style = Literal["screen", "paper"]
_CONSTANTS = ("trainable_parameters", "total_parameters", "frozen_layers", "train_seconds")
_SYMBOLS = ("diamond", "circle", "square", "triangle-up", "x", "star", "triangle-down")


def main_metric(task: str) -> str:
    """The dev metric a fine-tuning task is judged by."""
    if task == "stsb":
        return "spearman"
    return "f1" if task.startswith("ner") else "accuracy"


def _finetune_rows(training: pd.DataFrame) -> pd.DataFrame:
    if not {"strategy", "kind", "arm"} <= set(training.columns):  # tables before strategies
        return training.iloc[0:0]
    return training[(training["kind"] == "finetune") & training["strategy"].notna()]


def strategy_arms(training: pd.DataFrame) -> dict[str, list[str]]:
    """Per task, the arms of its fine-tuning jobs (table order); only tasks with 2+ arms."""
    rows = _finetune_rows(training)
    out = {}
    for task, frame in rows.groupby("task", sort=False):
        arms = list(dict.fromkeys(frame["arm"]))
        if len(arms) >= 2:
            out[str(task)] = arms
    return out


def strategy_finals(training: pd.DataFrame) -> pd.DataFrame:
    """One row per fine-tuning job of a compared task (see module docstring).

    Columns: ``task``, ``arm``, ``strategy``, ``job``, ``seed``, ``steps``, ``metric``, ``dev``
    (the dev metric at the last evaluated step) and :data:`_CONSTANTS`.
    """
    rows = _finetune_rows(training)
    tasks = strategy_arms(training)
    if not tasks:
        return pd.DataFrame()
    out = []
    for (task, arm, job), frame in rows[rows["task"].isin(list(tasks))].groupby(
        ["task", "arm", "model"], sort=False
    ):
        metric = main_metric(str(task))
        dev = frame[(frame["split"] == "dev") & (frame["metric"] == metric) & frame["step"].notna()]
        last = dev.loc[dev["step"] == dev["step"].max(), "value"] if not dev.empty else dev["value"]
        constants = frame[frame["step"].isna() & (frame["split"] == "train")]
        row = {
            "task": task,
            "arm": arm,
            "strategy": frame["strategy"].iloc[0],
            "job": job,
            "seed": int(frame["seed"].iloc[0]),
            "steps": int(dev["step"].max()) if not dev.empty else 0,
            "metric": metric,
            "dev": float(last.iloc[-1]) if not last.empty else np.nan,
        }
        for name in _CONSTANTS:
            hit = constants.loc[constants["metric"] == name, "value"]
            row[name] = float(hit.iloc[-1]) if not hit.empty else np.nan
        out.append(row)
    return pd.DataFrame(out)


def strategy_table(finals: pd.DataFrame) -> pd.DataFrame:
    """Per task and arm: trainable parameters (and % of all), dev metric over seeds (mean, sd,
    min, max) and mean training seconds; arms in study order."""
    rows = []
    for (task, arm), frame in finals.groupby(["task", "arm"], sort=False):
        dev = frame["dev"].dropna()
        trainable = float(frame["trainable_parameters"].iloc[0])
        rows.append(
            {
                "task": task,
                "arm": arm,
                "strategy": frame["strategy"].iloc[0],
                "trainable": int(trainable) if np.isfinite(trainable) else pd.NA,
                "trainable_pct": 100 * trainable / float(frame["total_parameters"].iloc[0]),
                "metric": frame["metric"].iloc[0],
                "n_seeds": len(dev),
                "mean": dev.mean(),
                "sd": dev.std(ddof=1) if len(dev) > 1 else np.nan,
                "min": dev.min(),
                "max": dev.max(),
                "seconds": frame["train_seconds"].mean(),
            }
        )
    return pd.DataFrame(rows)


def _reference(table: pd.DataFrame) -> pd.Series | None:
    full = table[table["strategy"] == "full"]
    return full.iloc[0] if not full.empty else None


def params_figure(table: pd.DataFrame, finals: pd.DataFrame, task: str, style: Style) -> go.Figure:
    """Dev metric against trainable parameters (log x): one point per arm (mean; bars: seed
    min-max; dots: seeds), full fine-tuning as a dashed reference line with its seed band."""
    table, finals = table[table["task"] == task], finals[finals["task"] == task]
    metric = str(table["metric"].iloc[0])
    fig = go.Figure()
    reference = _reference(table)
    if reference is not None:
        fig.add_hline(
            y=float(reference["mean"]),
            line={"color": "#777777", "dash": "dash", "width": 1},
            annotation_text=f"full fine-tuning ({reference['arm']})",
            annotation_position="bottom left",
        )
        for y in (reference["min"], reference["max"]):  # its seed range
            fig.add_hline(y=float(y), line={"color": "#777777", "dash": "dot", "width": 1})
    for i, row in enumerate(table.itertuples()):
        color = color_for(i)
        seeds = finals[finals["arm"] == row.arm]
        fig.add_trace(
            go.Scatter(
                x=[row.trainable],
                y=[row.mean],
                mode="markers",
                # colour and shape: fifteen arms need both to be told apart
                marker={"size": 10, "color": color, "symbol": _SYMBOLS[i % len(_SYMBOLS)]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [row.max - row.mean],
                    "arrayminus": [row.mean - row.min],
                    "color": color,
                },
                name=f"{row.arm} ({row.trainable_pct:.3g}%)",
                legendgroup=row.arm,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=seeds["trainable_parameters"],
                y=seeds["dev"],
                mode="markers",
                marker={"size": 5, "color": color, "opacity": 0.6},
                legendgroup=row.arm,
                showlegend=False,
                hovertemplate=f"{row.arm}: %{{y:.4g}}<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="trainable parameters (log)")
    fig.update_yaxes(title_text=f"dev {metric}")
    fig.update_layout(title=f"{task}: dev {metric} vs trainable parameters (bars: seeds)")
    return apply_style(fig, style=style, column="double")


def freeze_figure(finals: pd.DataFrame, task: str, style: Style) -> go.Figure | None:
    """Dev metric against the number of frozen lowest layers (0 = full fine-tuning)."""
    sweep = finals[(finals["task"] == task) & finals["strategy"].isin(["full", "freeze", "top"])]
    if sweep["frozen_layers"].nunique() < 2:
        return None
    metric = str(sweep["metric"].iloc[0])
    by_k = sweep.groupby("frozen_layers")["dev"].agg(["mean", "min", "max"]).sort_index()
    x = [int(k) for k in by_k.index]
    color = color_for(0)
    fig = go.Figure()
    fig.add_trace(_band(x, by_k["min"], by_k["max"], color, "seeds"))
    fig.add_trace(
        go.Scatter(x=x, y=by_k["mean"], mode="lines+markers", name="mean over seeds",
                   line={"color": color, "width": 2})
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=sweep["frozen_layers"], y=sweep["dev"], mode="markers", name="seeds",
                   marker={"size": 5, "color": color, "opacity": 0.6})
    )  # fmt: skip
    fig.update_xaxes(title_text="frozen layers k (1 = embeddings, L+1 = all)", dtick=1)
    fig.update_yaxes(title_text=f"dev {metric}")
    # One series: the title says what line, band and dots are; a legend below the plot would
    # collide with the axis title in a single column.
    fig.update_layout(
        title={
            "text": f"{task}: dev {metric}, layers 0..k-1 frozen",
            "subtitle": {"text": "line: mean; dots and band: seeds"},
        },
        showlegend=False,
    )
    return apply_style(fig, style=style)


def _per_layer(training: pd.DataFrame, task: str, metric: str) -> pd.DataFrame:
    """Mean (and seed min/max) per arm and layer of ``metric`` at each job's last step."""
    rows = _finetune_rows(training)
    rows = rows[(rows["task"] == task) & (rows["metric"] == metric) & rows["layer"].notna()]
    if rows.empty:
        return rows
    last = rows.groupby("model")["step"].transform("max")
    rows = rows[rows["step"] == last]
    per_job = rows.groupby(["arm", "model", "layer"], sort=False)["value"].mean().reset_index()
    return per_job.groupby(["arm", "layer"], sort=False)["value"].agg(["mean", "min", "max"])


def layer_lines_figure(
    training: pd.DataFrame, task: str, metric: str, title: str, y_title: str, style: Style,
    log_y: bool = False,
) -> go.Figure | None:  # fmt: skip
    """One line per arm over layers 0..L (mean over seeds, band: seed min-max)."""
    per = _per_layer(training, task, metric)
    if per.empty:
        return None
    if log_y:  # a frozen layer did not move: no point on a log axis
        per = per.where(per > 0)
    fig = go.Figure()
    arms = list(dict.fromkeys(per.index.get_level_values("arm")))
    for i, arm in enumerate(arms):
        hit = per.loc[arm].sort_index()
        if hit["mean"].isna().all():
            continue  # nothing moved (a frozen encoder): no line on a log axis
        x = [int(layer) for layer in hit.index]
        color = color_for(i)
        fig.add_trace(_band(x, hit["min"], hit["max"], color, arm))
        fig.add_trace(
            go.Scatter(x=x, y=hit["mean"], mode="lines+markers", name=arm, legendgroup=arm,
                       line={"color": color, "width": 2})
        )  # fmt: skip
    if metric == "mix_weight":  # where the weights start: every layer alike
        fig.add_hline(
            y=1 / len(per.index.get_level_values("layer").unique()),
            line={"color": "#777777", "dash": "dash", "width": 1},
            annotation_text="uniform (start)",
            annotation_position="bottom right",
        )
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=1)
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    fig.update_layout(title=title)
    return apply_style(fig, style=style, column="double")


def strategy_figures(training: pd.DataFrame, *, style: Style = "screen") -> dict[str, go.Figure]:
    """The strategy figures of a run, per task; empty when no task has two arms."""
    finals = strategy_finals(training)
    if finals.empty:
        return {}
    table = strategy_table(finals)
    figures: dict[str, go.Figure | None] = {}
    for task in strategy_arms(training):
        figures[figure_name("strategy_params", task)] = params_figure(table, finals, task, style)
        figures[figure_name("strategy_freeze", task)] = freeze_figure(finals, task, style)
        figures[figure_name("strategy_mix_weights", task)] = layer_lines_figure(
            training, task, "mix_weight",
            f"{task}: learned scalar-mix weight per layer",
            "weight", style,
        )  # fmt: skip
        figures[figure_name("strategy_weight_change", task)] = layer_lines_figure(
            training, task, "relative_weight_change",
            f"{task}: relative change of each layer's weights",
            "‖θ_l − θ_l⁰‖ / ‖θ_l⁰‖ (log)", style, log_y=True,
        )  # fmt: skip
    return {name: fig for name, fig in figures.items() if fig is not None}
