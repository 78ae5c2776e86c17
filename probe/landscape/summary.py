"""The per-pair comparison table of a pretrained-vs-scratch study (Hao et al. 2019).

:func:`pair_summary` reads the landscape tables of a run (rows labelled with ``pair`` and
``init``) and gives one row per pair and init with, over the seeds of that arm, the mean and
sample standard deviation of: steps (and seconds) to each training-loss threshold, the final
training-subset loss and accuracy, dev accuracy, lambda_max, the mean loss rise at each radius
(train batches) and the generalisation gap (dev loss - train loss at the final weights, on the
landscape's fixed batches). ``criterion_met`` counts the seeds whose stop criterion held and
``reached_<t>`` the seeds that reached each threshold (a mean over fewer seeds says so).

Pure pandas; the landscape stage prints it, and :func:`markdown` renders it for the README.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["markdown", "pair_summary"]

_KEYS = ["pair", "init", "model"]


def _per_job(table: pd.DataFrame, metric: str, column: str, **where: object) -> pd.DataFrame:
    part = table[table["metric"] == metric]
    for key, value in where.items():
        part = part[part[key] == value]
    return part[[*_KEYS, "value"]].rename(columns={"value": column})


def _job_values(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per job: every number of the summary, before averaging over seeds."""
    conv = tables["landscape_convergence"]
    sharp = tables["sharpness"]
    traj = tables["landscape_trajectory"]
    parts = [
        _per_job(conv, "criterion_met", "criterion_met"),
        _per_job(conv, "stop_step", "stop_step"),
        _per_job(conv, "final_subset_loss", "train_loss"),
        _per_job(conv, "final_subset_accuracy", "train_accuracy"),
        _per_job(conv, "final_dev_accuracy", "dev_accuracy"),
        _per_job(sharp, "hessian_top_eigenvalue", "lambda_max"),
    ]
    for threshold in sorted(conv["threshold"].dropna().unique(), reverse=True):
        parts.append(
            _per_job(conv, "steps_to_loss", f"steps_to_{threshold:g}", threshold=threshold)
        )
        parts.append(
            _per_job(conv, "seconds_to_loss", f"seconds_to_{threshold:g}", threshold=threshold)
        )
    for radius in sorted(sharp["radius"].dropna().unique()):
        parts.append(
            _per_job(sharp, "loss_increase_mean", f"rise_r{radius:g}", radius=radius, split="train")
        )
    final = traj[(traj["checkpoint"] == "final") & (traj["metric"] == "loss")]
    loss = final.pivot_table(index=_KEYS, columns="split", values="value").reset_index()
    if {"train", "dev"} <= set(loss):
        loss["gen_gap"] = loss["dev"] - loss["train"]
        parts.append(loss[[*_KEYS, "gen_gap"]])
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on=_KEYS, how="outer")
    return merged


def pair_summary(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean and std over seeds per (pair, init); columns ``<name>`` and ``<name>_std``.

    ``n`` is the number of seeds, ``criterion_met`` how many met the stop criterion and
    ``reached_<t>`` how many reached the loss threshold ``t`` (NaN steps are left out of that
    threshold's mean).
    """
    jobs = _job_values(tables).dropna(subset=["pair", "init"])
    values = [c for c in jobs if c not in _KEYS and c != "criterion_met"]
    rows = []
    for (pair, init), group in jobs.groupby(["pair", "init"], sort=True):
        row: dict[str, object] = {"pair": pair, "init": init, "n": len(group)}
        row["criterion_met"] = int(np.nansum(group["criterion_met"]))
        for column in values:
            series = group[column].dropna()
            row[column] = series.mean() if len(series) else np.nan
            row[f"{column}_std"] = series.std(ddof=1) if len(series) > 1 else np.nan
            if column.startswith("steps_to_"):
                row[f"reached_{column.removeprefix('steps_to_')}"] = len(series)
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, column: str, digits: str) -> str:
    mean, std = row.get(column), row.get(f"{column}_std")
    if mean is None or pd.isna(mean):
        return "–"
    text = format(mean, digits)
    return text if std is None or pd.isna(std) else f"{text} ± {format(std, digits)}"


def markdown(summary: pd.DataFrame, pair: str) -> str:
    """The summary of one pair as a Markdown table (rows: arms; mean ± std over seeds)."""
    part = summary[summary["pair"] == pair]
    steps = [c for c in part if c.startswith("steps_to_") and not c.endswith("_std")]
    rises = [c for c in part if c.startswith("rise_r") and not c.endswith("_std")]
    header = (
        ["arm", "fitted"]
        + [f"steps to loss ≤ {c.removeprefix('steps_to_')}" for c in steps]
        + ["train loss", "train acc", "dev acc", "λmax"]
        + [f"rise r={c.removeprefix('rise_r')}" for c in rises]
        + ["gen gap"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in part.iterrows():
        reached = []
        for c in steps:
            n_reached = int(row[f"reached_{c.removeprefix('steps_to_')}"])
            note = f" ({n_reached}/{row['n']})" if n_reached < row["n"] else ""
            reached.append(_cell(row, c, ".0f") + note)
        cells = (
            [str(row["init"]), f"{row['criterion_met']}/{row['n']}"]
            + reached
            + [_cell(row, c, f) for c, f in (("train_loss", ".3f"), ("train_accuracy", ".3f"))]
            + [_cell(row, "dev_accuracy", ".3f"), _cell(row, "lambda_max", ".3g")]
            + [_cell(row, c, ".3g") for c in rises]
            + [_cell(row, "gen_gap", ".3f")]
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
