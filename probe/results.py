"""Tidy result tables: the hand-off between stages, figures and the dashboard.

Every table is long: one row per ``study, model, checkpoint, task, layer, probe, control, seed,
split, metric, value`` (:data:`COLUMNS`). Stages may add columns after these (``step``, ``x``,
``y``, ...), but never drop one; a column that does not apply holds a missing value. Tables are
written as parquet (with :data:`SCHEMA_VERSION` in its metadata) and a CSV twin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMNS", "SCHEMA_VERSION", "read_table", "tidy", "write_table"]

SCHEMA_VERSION = 1
COLUMNS = (
    "study", "model", "checkpoint", "task", "layer", "probe", "control", "seed", "split",
    "metric", "value",
)  # fmt: skip
_INTEGER_COLUMNS = ("layer", "seed")


def tidy(rows: pd.DataFrame | list[dict], **constants: object) -> pd.DataFrame:
    """A results frame with the core columns first (missing ones filled with NA).

    ``constants`` fill columns that are the same for all rows (e.g. ``study=...``).
    """
    frame = pd.DataFrame(rows).copy()
    for name, value in constants.items():
        frame[name] = value
    for name in COLUMNS:
        if name not in frame:
            frame[name] = pd.NA
    for name in _INTEGER_COLUMNS:
        frame[name] = pd.array(frame[name], dtype="Int64")
    frame["value"] = frame["value"].astype(float)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *extra]].reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as ``path`` (.parquet, schema version in metadata) and a .csv twin."""
    path = Path(path).with_suffix(".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {
        **(table.schema.metadata or {}),
        b"probe": json.dumps({"schema_version": SCHEMA_VERSION}).encode(),
    }
    pq.write_table(table.replace_schema_metadata(metadata), path)
    frame.to_csv(path.with_suffix(".csv"), index=False)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a results table written by :func:`write_table` (parquet, or its CSV twin)."""
    path = Path(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    table = pq.read_table(path.with_suffix(".parquet"))
    meta = json.loads((table.schema.metadata or {}).get(b"probe", b"{}"))
    version = meta.get("schema_version")
    if version is not None and version > SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {version} is newer than this probe ({SCHEMA_VERSION})"
        )
    return table.to_pandas()
