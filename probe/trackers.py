"""Experiment trackers: ``report_to`` in a study, following transformers' convention.

``report_to: none`` (the default) logs nowhere and needs nothing; ``tensorboard``, ``wandb`` and
``mlflow`` (a name or a list) log there, each needing its package; ``all`` means every one of them
that is installed. As in transformers, each tracker reads its usual environment: ``WANDB_MODE=
offline`` (or ``WANDB_DISABLED``), ``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``,
``MLFLOW_EXPERIMENT_NAME``. Without a tracking URI, MLflow writes to ``RUN/logs/mlruns`` (a local
file store), TensorBoard to ``RUN/logs/tensorboard`` and W&B under ``RUN/logs``: nothing leaves
the machine unless the user configured it to.

What is logged: every results table a stage writes (training losses, probe accuracies,
embedding scores, ...), one scalar per row. A row's tag is the table name and the row's labels
(``probe/tiny/upos/linear/task/test/accuracy``); its step is ``step`` (training) or ``layer``
(probes: a curve over layers). A table whose rows do not have one value per (tag, step) -- a
loss surface over a grid -- is not logged as scalars.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TRACKERS",
    "Trackers",
    "resolve_report_to",
    "table_scalars",
    "tracker_problems",
]

#: Tracker name -> the module it needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
_NOT_TAGS = ("study", "value", "ci_low", "ci_high")


def _installed(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name]) is not None


def resolve_report_to(report_to: str | Sequence[str]) -> list[str]:
    """The trackers to use: ``none`` -> [], ``all`` -> every installed one, else the names."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if "none" in names:
        return []
    if "all" in names:
        return [n for n in TRACKERS if _installed(n)]
    return list(dict.fromkeys(names))


def tracker_problems(report_to: str | Sequence[str]) -> list[str]:
    """One line per named tracker whose package is not installed."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return [
        f"report_to: {name} needs the {TRACKERS[name]} package; pip install {TRACKERS[name]}, "
        "or drop it from report_to"
        for name in names
        if name in TRACKERS and not _installed(name)
    ]


def _label(column: str, value: Any) -> str:
    import pandas as pd

    if pd.api.types.is_number(value) and not pd.api.types.is_bool(value):
        return f"{column}={int(value) if float(value).is_integer() else value}"
    return str(value)


def table_scalars(name: str, frame: pd.DataFrame) -> Iterator[tuple[str, float, int]]:
    """``(tag, value, step)`` for every row with a finite value (see the module docstring).

    Yields nothing when a (tag, step) pair would repeat (a grid, not a series).
    """
    import pandas as pd  # here, not at the top: validation imports this module for report_to

    if frame.empty or "value" not in frame:
        return
    step_column = next(
        (c for c in ("step", "layer") if c in frame and frame[c].notna().any()), None
    )
    tags = [
        c for c in frame.columns
        if c not in _NOT_TAGS and c != step_column
        and (c in ("seed", "layer") or not pd.api.types.is_numeric_dtype(frame[c]))
    ]  # fmt: skip
    seen: set[tuple[str, int]] = set()
    out = []
    for row in frame.itertuples(index=False):
        record = row._asdict()
        value = record["value"]
        if value is None or pd.isna(value) or not math.isfinite(float(value)):
            continue
        parts = [_label(c, record[c]) for c in tags if not pd.isna(record[c])]
        step = record[step_column] if step_column is not None else 0
        key = ("/".join([name, *parts]), 0 if pd.isna(step) else int(step))
        if key in seen:
            return
        seen.add(key)
        out.append((key[0], float(value), key[1]))
    yield from out


class _Tracker(Protocol):
    def log(self, tag: str, value: float, step: int) -> None: ...

    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, run_dir: Path, name: str, config: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "logs" / "tensorboard"))
        self.writer.add_text("study", f"```\n{config}\n```")

    def log(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, run_dir: Path, name: str, config: dict) -> None:
        import wandb

        # WANDB_MODE=offline / WANDB_DISABLED are read by wandb itself, as in transformers.
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "probe"),
            name=name,
            dir=str(run_dir / "logs"),
            config=config,
            reinit=True,
        )

    def log(self, tag: str, value: float, step: int) -> None:
        # W&B steps must increase within a run; a layer or training step goes in as a field.
        self.run.log({tag: value, f"{tag.split('/')[0]}/step": step})

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, run_dir: Path, name: str, config: dict) -> None:
        import mlflow

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri((run_dir / "logs" / "mlruns").resolve().as_uri())
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", config.get("name", "probe")))
        mlflow.start_run(run_name=name)
        mlflow.log_dict(config, "study.json")

    def log(self, tag: str, value: float, step: int) -> None:
        self.mlflow.log_metric(tag.replace("=", "_"), value, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


_CLASSES = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _MLflow}


class Trackers:
    """The trackers of one run; :meth:`log_table` sends a results table to each of them.

    Parameters
    ----------
    names : tracker names from :func:`resolve_report_to`.
    run_dir : the run folder (trackers write under ``RUN/logs``).
    name : the run's name in the trackers (``<study>/<run folder name>``).
    config : the resolved study, recorded with the run.
    """

    def __init__(self, names: Sequence[str], run_dir: Path, name: str, config: dict) -> None:
        self.names = list(names)
        self._trackers: list[_Tracker] = [_CLASSES[n](Path(run_dir), name, config) for n in names]

    def log_table(self, name: str, frame: pd.DataFrame) -> int:
        """Log every row of a results table as a scalar; returns how many were logged."""
        if not self._trackers:
            return 0
        count = 0
        for tag, value, step in table_scalars(name, frame):
            for tracker in self._trackers:
                tracker.log(tag, value, step)
            count += 1
        return count

    def close(self) -> None:
        for tracker in self._trackers:
            tracker.close()
        self._trackers = []
