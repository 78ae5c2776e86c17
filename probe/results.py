"""Tidy result tables: the hand-off between stages, figures and the dashboard.

Every table is long: one row per ``study, model, checkpoint, task, layer, probe, control, seed,
split, metric, value`` (:data:`COLUMNS`), then the table's own columns, all pinned in
:mod:`probe.schemas`; a column that does not apply holds a missing value. Tables are written as
parquet (with :data:`SCHEMA_VERSION` in its metadata) and a CSV twin; reading a table of an older
schema version upgrades it (:func:`read_table`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMNS", "SCHEMA_VERSION", "read_table", "tidy", "write_table"]

from probe.schemas import CORE, SCHEMA_VERSION

COLUMNS = tuple(column.name for column in CORE)
_INTEGER_COLUMNS = tuple(column.name for column in CORE if column.dtype == "Int64")


def tidy(rows: pd.DataFrame | list[dict], **constants: object) -> pd.DataFrame:
    """A frame with the core columns first (missing ones filled with NA), for tables that have no
    pinned schema (ad-hoc analyses); run tables are built by ``probe.schemas`` instead.

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
    frame = table.to_pandas()
    if path.stem == "embeddings" and (version or 1) < 2 and "whitening" not in frame:
        frame = upgrade_embeddings_v1(frame)
    return frame


def upgrade_embeddings_v1(frame: pd.DataFrame) -> pd.DataFrame:
    """A version-1 ``embeddings`` table in version-2 columns.

    Version 1 kept the pooling's name in ``probe``, its explicit spelling in ``pooling`` and the
    whitening variant in ``control``; version 2 has a column for each and leaves ``probe`` and
    ``control`` empty (they mean a probe and a label set in every table).
    """
    from probe.schemas import SCHEMAS

    renamed = frame.rename(columns={"pooling": "pooling_spec"}).assign(
        pooling=frame["probe"], whitening=frame["control"], probe=pd.NA, control=pd.NA
    )
    return SCHEMAS["embeddings"].frame(renamed)
