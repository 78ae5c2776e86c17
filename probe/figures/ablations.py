"""Pretraining ablations: arms of pretraining jobs compared with their seed spread.

An *arm* is one pretraining setting (``arm`` in the job, the ``arm`` column of the training
table); its jobs are seeds of it. Everything here is computed from the training table and,
for the probe numbers, the probe table, whose ``model`` labels name the jobs whose final
checkpoints were probed (``{spec: "trained:<job>", name: <job>}`` in the study).

- :func:`final_metrics`: one row per job: held-out MLM loss and accuracy at the last step, the
  gap to the same measure on training text, NSP accuracy, and per probe task the best layer
  (chosen on dev) with its test accuracy.
- :func:`ablation_table`: per arm, mean and spread over seeds, and whether each difference to the
  baseline arm is larger than the seed spread: here, whether the seed ranges ``[min, max]`` of the
  arm and of the baseline do not overlap (with 2 seeds a conservative rule; it says nothing about
  significance beyond the seeds run).
- figures: held-out MLM loss against step (mean line, min-max band), final metrics per arm (mean
  with min-max bars and each seed), probe accuracy by layer per arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probe.figures.probing import _band  # one look for seed bands in every figure
from probe.figures.style import apply_style, color_for

__all__ = [
    "METRICS",
    "ablation_arms",
    "ablation_curves",
    "ablation_figures",
    "ablation_finals",
    "ablation_probes",
    "ablation_table",
    "final_metrics",
]

#: Final metrics of a job: column -> panel title.
METRICS: dict[str, str] = {
    "mlm_loss": "MLM loss (nats)",
    "mlm_accuracy": "MLM accuracy",
    "gap": "held-out - train loss",
    "nsp_accuracy": "NSP accuracy",
    "best_upos": "UPOS probe, best layer",
    "best_deprel": "deprel probe, best layer",
}
_PROBE_TASKS = ("upos", "deprel")


def ablation_arms(training: pd.DataFrame) -> list[str]:
    """Arms of the pretraining jobs, in table order; empty unless there is something to compare.

    An ablation needs at least two arms and at least one arm with two or more seeds (jobs).
    """
    if "arm" not in training.columns:
        return []
    jobs = training[training["task"].astype(str).str.startswith("mlm")]
    jobs = jobs[["model", "arm"]].drop_duplicates()
    counts = jobs.groupby("arm", sort=False)["model"].nunique()
    if len(counts) < 2 or counts.max() < 2:
        return []
    return list(counts.index)


def _at_last_step(rows: pd.DataFrame, split: str, metric: str) -> float:
    hit = rows[(rows["split"] == split) & (rows["metric"] == metric) & rows["step"].notna()]
    if hit.empty:
        return float("nan")
    return float(hit.loc[hit["step"] == hit["step"].max(), "value"].iloc[-1])


def _constant(rows: pd.DataFrame, split: str, metric: str) -> float:
    hit = rows[(rows["split"] == split) & (rows["metric"] == metric) & rows["step"].isna()]
    return float(hit["value"].iloc[-1]) if not hit.empty else float("nan")


def _best_layer(probe: pd.DataFrame, model: str, task: str) -> tuple[float, float]:
    """(test accuracy, layer) at the layer with the best dev accuracy; NaNs if not probed."""
    rows = probe[
        (probe["model"] == model)
        & (probe["task"] == task)
        & (probe["probe"] == "linear")
        & (probe["control"] == "task")
        & (probe["metric"] == "accuracy")
        & probe["layer"].notna()
    ]
    dev = rows[rows["split"] == "dev"].groupby("layer")["value"].mean()
    test = rows[rows["split"] == "test"].groupby("layer")["value"].mean()
    if dev.empty or test.empty:
        return float("nan"), float("nan")
    layer = dev.idxmax()
    return float(test.get(layer, np.nan)), float(layer)


def final_metrics(training: pd.DataFrame, probe: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per pretraining job of an ablation (see module docstring).

    Columns: ``arm``, ``job``, ``seed``, ``steps``, ``epochs``, the keys of :data:`METRICS`,
    and ``best_<task>_layer``.
    """
    arms = ablation_arms(training)
    rows = []
    for (arm, job), frame in training[training["arm"].isin(arms)].groupby(
        ["arm", "model"], sort=False
    ):
        steps = frame["step"].dropna()
        row = {
            "arm": arm,
            "job": job,
            "seed": int(frame["seed"].iloc[0]),
            "steps": int(steps.max()) if not steps.empty else 0,
            "epochs": float(frame["epoch"].dropna().max()) if frame["epoch"].notna().any() else 0,
            "examples_per_epoch": _constant(frame, "train", "examples_per_epoch"),
            "mlm_loss": _at_last_step(frame, "dev", "mlm_loss"),
            "mlm_accuracy": _at_last_step(frame, "dev", "mlm_accuracy"),
            "train_mlm_loss": _at_last_step(frame, "train_sample", "mlm_loss"),
            "nsp_accuracy": _at_last_step(frame, "dev", "nsp_accuracy"),
            "seen_masks_loss": _at_last_step(frame, "train_sample", "mlm_loss_seen_masks"),
        }
        row["gap"] = row["mlm_loss"] - row["train_mlm_loss"]
        for task in _PROBE_TASKS:
            best, layer = _best_layer(probe, job, task) if probe is not None else (np.nan,) * 2
            row[f"best_{task}"], row[f"best_{task}_layer"] = best, layer
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:  # arms in the order the study lists them
        frame["arm"] = pd.Categorical(frame["arm"], categories=arms, ordered=True)
        frame = frame.sort_values(["arm", "seed"], kind="stable").reset_index(drop=True)
        frame["arm"] = frame["arm"].astype(str)
    return frame


def ablation_table(final: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Per arm and metric: mean, sd and range over seeds, and the comparison with the baseline.

    Parameters
    ----------
    final : :func:`final_metrics`.
    baseline : the reference arm (default: the first).

    Returns
    -------
    DataFrame with rows ``arm, metric, n_seeds, mean, sd, min, max, diff, beyond_spread``:
    ``diff`` is ``mean - baseline mean``; ``beyond_spread`` is True when the seed ranges of the
    arm and of the baseline do not overlap, False when they do, and missing for the baseline
    itself or a metric the arm lacks (NSP accuracy of an MLM-only arm).
    """
    arms = list(dict.fromkeys(final["arm"]))
    baseline = baseline or arms[0]
    metrics = [*METRICS, "best_upos_layer", "best_deprel_layer", "epochs", "train_mlm_loss",
               "seen_masks_loss"]  # fmt: skip
    rows = []
    for metric in metrics:
        base = final.loc[final["arm"] == baseline, metric].dropna()
        for arm in arms:
            values = final.loc[final["arm"] == arm, metric].dropna()
            row = {"arm": arm, "metric": metric, "n_seeds": len(values)}
            if values.empty:
                rows.append(row)
                continue
            row.update(
                mean=values.mean(),
                sd=values.std(ddof=1) if len(values) > 1 else np.nan,
                min=values.min(),
                max=values.max(),
            )
            if arm != baseline and not base.empty:
                row["diff"] = values.mean() - base.mean()
                row["beyond_spread"] = bool(values.min() > base.max() or values.max() < base.min())
            rows.append(row)
    table = pd.DataFrame(rows)
    table["beyond_spread"] = table.get("beyond_spread", pd.Series(dtype=object)).astype("boolean")
    return table


def ablation_curves(
    training: pd.DataFrame,
    *,
    split: str = "dev",
    metric: str = "mlm_loss",
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """One metric against step, one line per arm (mean over seeds) with a min-max seed band."""
    arms = ablation_arms(training)
    fig = go.Figure()
    for i, arm in enumerate(arms):
        rows = training[
            (training["arm"] == arm)
            & (training["split"] == split)
            & (training["metric"] == metric)
            & training["step"].notna()
        ]
        if rows.empty:
            continue
        by_step = rows.groupby("step")["value"].agg(["mean", "min", "max", "count"]).sort_index()
        x = [int(s) for s in by_step.index]
        color = color_for(i)
        fig.add_trace(_band(x, by_step["min"], by_step["max"], color, arm))
        n = int(rows["model"].nunique())
        fig.add_trace(
            go.Scatter(
                x=x,
                y=by_step["mean"],
                mode="lines+markers",
                name=f"{arm} ({n} seeds)",
                legendgroup=arm,
                line={"color": color, "width": 2},
            )
        )
    fig.update_layout(title=f"{split} {metric} by arm (mean over seeds, band: min to max)")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text=f"{split} {metric}")
    return apply_style(fig, style=style)


def ablation_finals(
    final: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Final metrics per arm: each seed as a dot, the mean as a bar tick with min-max whiskers."""
    metrics = [m for m in (metrics or METRICS) if final[m].notna().any()]
    arms = list(dict.fromkeys(final["arm"]))
    n_cols = min(3, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=[METRICS[m] for m in metrics],
        horizontal_spacing=0.1,
        vertical_spacing=0.22,
    )
    for k, metric in enumerate(metrics):
        where = {"row": k // n_cols + 1, "col": k % n_cols + 1}
        for i, arm in enumerate(arms):
            values = final.loc[final["arm"] == arm, metric].dropna()
            if values.empty:
                continue
            color = color_for(i)
            mean = values.mean()
            fig.add_trace(
                go.Scatter(
                    x=[arm],
                    y=[mean],
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 18, "color": color},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [values.max() - mean],
                        "arrayminus": [mean - values.min()],
                        "color": color,
                    },
                    name=arm,
                    showlegend=False,  # the x axis names the arms
                ),
                **where,
            )
            fig.add_trace(
                go.Scatter(
                    x=[arm] * len(values),
                    y=values,
                    mode="markers",
                    marker={"size": 6, "color": color},
                    showlegend=False,
                    hovertemplate=f"{arm}: %{{y:.4f}}<extra></extra>",
                ),
                **where,
            )
        fig.update_xaxes(tickangle=-45, categoryorder="array", categoryarray=arms, tickmode="array",
                         tickvals=arms, **where)  # fmt: skip
    fig.update_layout(
        title="final metrics per arm, held-out unless said (dots: seeds; tick: mean; bars: min-max)"
    )
    return apply_style(fig, style=style, column="double")


def ablation_probes(
    probe: pd.DataFrame,
    final: pd.DataFrame,
    *,
    split: str = "test",
    style: Literal["screen", "paper"] = "screen",
) -> go.Figure:
    """Probe accuracy by layer, one line per arm (mean over seeds, min-max band), per task."""
    jobs = dict(zip(final["job"], final["arm"], strict=True))
    rows = probe[
        probe["model"].isin(list(jobs))
        & (probe["probe"] == "linear")
        & (probe["control"] == "task")
        & (probe["split"] == split)
        & (probe["metric"] == "accuracy")
        & probe["layer"].notna()
    ].copy()
    rows["arm"] = rows["model"].map(jobs)
    tasks = [t for t in _PROBE_TASKS if t in set(rows["task"])] or sorted(set(rows["task"]))
    arms = list(dict.fromkeys(final["arm"]))
    fig = make_subplots(rows=1, cols=max(1, len(tasks)), subplot_titles=tasks)
    for k, task in enumerate(tasks, start=1):
        for i, arm in enumerate(arms):
            hit = rows[(rows["task"] == task) & (rows["arm"] == arm)]
            if hit.empty:
                continue
            per_job = hit.groupby(["model", "layer"])["value"].mean().reset_index()
            by_layer = per_job.groupby("layer")["value"].agg(["mean", "min", "max"]).sort_index()
            x = [int(layer) for layer in by_layer.index]
            color = color_for(i)
            fig.add_trace(_band(x, by_layer["min"], by_layer["max"], color, arm), row=1, col=k)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=by_layer["mean"],
                    mode="lines+markers",
                    name=arm,
                    legendgroup=arm,
                    showlegend=k == 1,
                    line={"color": color, "width": 2},
                ),
                row=1,
                col=k,
            )
        fig.update_xaxes(title_text="layer", dtick=1, row=1, col=k)
    fig.update_yaxes(title_text=f"{split} accuracy", row=1, col=1)
    fig.update_layout(title=f"linear probe {split} accuracy by layer per arm (band: seed min-max)")
    return apply_style(fig, style=style, column="double")


def ablation_figures(
    training: pd.DataFrame,
    probe: pd.DataFrame | None = None,
    *,
    style: Literal["screen", "paper"] = "screen",
) -> dict[str, go.Figure]:
    """The ablation figures of a run; empty when its training table holds no ablation."""
    if not ablation_arms(training):
        return {}
    final = final_metrics(training, probe)
    figures = {
        "ablation_mlm_loss": ablation_curves(training, style=style),
        "ablation_finals": ablation_finals(final, style=style),
    }
    if probe is not None and final["job"].isin(probe["model"]).any():
        figures["ablation_probes"] = ablation_probes(probe, final, style=style)
    return figures
