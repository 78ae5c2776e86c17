"""Convergence speed of fine-tuning jobs (Hao et al. 2019, Figure 1), from the training table.

A job trained with a ``stop`` criterion logs, at every check, the loss and accuracy of its whole
training subset (eval mode: ``subset_loss``, ``subset_accuracy``) and its training time so far
(``seconds``). :func:`convergence_rows` turns them into

- the curve: ``subset_loss``, ``subset_accuracy`` and ``seconds`` per checked step;
- the ladder: ``steps_to_loss`` and ``seconds_to_loss`` for each threshold (``threshold``
  column), the first checked step whose subset loss is at or below it; NaN if none was;
- the end point: ``criterion_met`` (1/0), ``stop_step``, ``final_subset_loss``,
  ``final_subset_accuracy`` and ``final_dev_accuracy`` (the dev accuracy at the last step).

Pure pandas: no model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from probe.errors import StudyError

__all__ = ["convergence_rows"]

_CURVE = ("subset_loss", "subset_accuracy", "seconds")


def _series(rows: pd.DataFrame, metric: str, split: str = "train") -> pd.Series:
    part = rows[(rows["metric"] == metric) & (rows["split"] == split) & rows["step"].notna()]
    return part.set_index(part["step"].astype(int))["value"].sort_index()


def convergence_rows(
    training: pd.DataFrame, job: str, thresholds: Sequence[float], **columns: Any
) -> list[dict]:
    """The curve, ladder and end-point rows of ``job`` (see the module docstring).

    Raises
    ------
    StudyError
        When the job logged no ``subset_loss`` (it was trained without ``stop``).
    """
    rows = training[training["model"].astype(str) == job]
    curve = {metric: _series(rows, metric) for metric in _CURVE}
    loss = curve["subset_loss"]
    if loss.empty:
        raise StudyError(
            f"landscape.convergence: job {job!r} logged no training-subset loss; give it a "
            "stop criterion (stop: {train_loss: 0.05}) so the loop scores its training subset"
        )
    out = [
        {"split": "train", "metric": metric, "value": float(v), "step": int(s), **columns}
        for metric, series in curve.items()
        for s, v in series.items()
    ]
    seconds = curve["seconds"]
    for threshold in thresholds:
        reached = loss[loss <= threshold]
        step = int(reached.index[0]) if not reached.empty else None
        for metric, value in (
            ("steps_to_loss", np.nan if step is None else step),
            ("seconds_to_loss", np.nan if step is None else seconds.get(step, np.nan)),
        ):
            out.append(
                {"split": "train", "metric": metric, "value": float(value),
                 "threshold": float(threshold), **columns}
            )  # fmt: skip
    met = _series(rows, "criterion_met")
    dev = _series(rows, "accuracy", "dev")
    last = int(loss.index[-1])
    ends = {
        "criterion_met": float(met.iloc[-1]) if not met.empty else np.nan,
        "stop_step": float(last),
        "final_subset_loss": float(loss.iloc[-1]),
        "final_subset_accuracy": float(curve["subset_accuracy"].get(last, np.nan)),
        "final_dev_accuracy": float(dev.get(last, np.nan)),
    }
    out += [
        {"split": "dev" if metric == "final_dev_accuracy" else "train", "metric": metric,
         "value": value, "step": last, **columns}
        for metric, value in ends.items()
    ]  # fmt: skip
    return out
