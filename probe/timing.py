"""Where a run's time goes: seconds per part of a stage, recorded in the manifest and printed.

A stage's total wall time says little about what to speed up. Stages wrap their expensive parts
(feature capture per split, task and control fits, bootstrap intervals, layer summaries, MDL,
figures) in :meth:`probe.rundir.RunContext.timed`; every call adds one record
``{stage, part, model, task, split, seed, seconds}`` (labels that do not apply are left out).
The records of a stage are stored under ``manifest["stages"][stage]["parts"]``, and the run ends
with a table of seconds per part summed over models, tasks and seeds (:func:`breakdown`).

Torch-free, so ``probe list`` and the dashboard can read the breakdown of any run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich.table import Table

__all__ = ["PartTimer", "breakdown", "breakdown_table", "manifest_parts"]

LABELS = ("model", "task", "split", "seed")


class PartTimer:
    """Collects ``(stage, part, labels, seconds)`` records while stages run."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    @contextmanager
    def timed(self, stage: str | None, part: str, **labels: object) -> Iterator[None]:
        """Time the ``with`` body as ``part`` of ``stage``; recorded only if the body finishes."""
        unknown = set(labels) - set(LABELS)
        if unknown:  # a typo would silently split one part into two rows of the breakdown
            raise TypeError(f"unknown timing label(s) {sorted(unknown)}; use {LABELS}")
        start = time.perf_counter()
        yield
        self.records.append(
            {
                "stage": stage,
                "part": part,
                **{k: v for k, v in labels.items() if v is not None},
                "seconds": round(time.perf_counter() - start, 3),
            }
        )

    def for_stage(self, stage: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["stage"] == stage]


def manifest_parts(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every part record of a run's manifest, in the order the stages ran."""
    return [
        {**record, "stage": name}
        for name, entry in manifest.get("stages", {}).items()
        for record in entry.get("parts", [])
    ]


def breakdown(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """Seconds per ``(stage, part)``: total, number of timed calls, share of the run's stage time.

    Rows are in the order the parts first ran; a final row per stage, ``(other)``, holds the
    stage time no part accounts for (loading models, writing tables, console reports).
    """
    columns = ["stage", "part", "seconds", "calls", "share"]
    parts = pd.DataFrame(manifest_parts(manifest))
    stages = {
        name: float(entry["seconds"])
        for name, entry in manifest.get("stages", {}).items()
        if "seconds" in entry
    }
    total = sum(stages.values())
    if not stages:
        return pd.DataFrame(columns=columns)
    rows = []
    for name, stage_seconds in stages.items():
        mine = parts[parts["stage"] == name] if len(parts) else parts
        if len(mine):
            grouped = mine.groupby("part", sort=False)["seconds"].agg(["sum", "count"])
            for part, (seconds, calls) in grouped.iterrows():
                rows.append([name, part, float(seconds), int(calls)])
        rest = stage_seconds - (float(mine["seconds"].sum()) if len(mine) else 0.0)
        rows.append([name, "(other)" if len(mine) else "(whole stage)", max(rest, 0.0), 1])
    frame = pd.DataFrame(rows, columns=columns[:-1])
    frame["share"] = frame["seconds"] / total if total > 0 else float("nan")
    return frame


def breakdown_table(frame: pd.DataFrame, title: str = "where the time went") -> Table:
    """The :func:`breakdown` frame as a console table."""
    table = Table(title=title)
    for name, justify in (("stage", "left"), ("part", "left"), ("seconds", "right"),
                          ("calls", "right"), ("share", "right")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in frame.itertuples(index=False):
        table.add_row(row.stage, row.part, f"{row.seconds:.1f}", str(row.calls), f"{row.share:.0%}")
    return table
