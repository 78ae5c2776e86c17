"""Read-only access to run folders, for the dashboard and ``probe export``.

A run folder (see :mod:`probe.rundir`) holds ``manifest.json`` and ``results/<table>.parquet``.
This module lists run folders under a runs directory, reads their manifests and tables, and says
which stages are done and which are missing, without ever writing to a run or importing the
training code (no torch import: the dashboard must start fast and run anywhere).

Nothing here raises on a half-written or broken run while *listing*: a run whose manifest is
missing or corrupt comes back as a :class:`RunInfo` with ``error`` set, so a list of a hundred runs
still shows the ninety-nine good ones. Opening one run (:func:`open_run`) or reading one table
(:func:`read_run_table`) raises :class:`RunError`, a one-line :class:`~probe.errors.ProbeError`.

Examples
--------
>>> import tempfile, json, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> run = root / "demo" / "20260101-000000"
>>> (run / "results").mkdir(parents=True)
>>> _ = (run / "manifest.json").write_text(json.dumps({"study": "demo", "status": "complete",
...     "config": {"probe": {"tasks": ["upos"]}}, "stages": {"probe": {"status": "done"}}}))
>>> [info.label for info in list_runs(root)]
['demo/20260101-000000']
>>> open_run(run).missing_tables
('probe',)
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probe.errors import ProbeError
from probe.layout import MANIFEST, RUN_SUBFOLDERS
from probe.results import read_table
from probe.stages import STAGE_NAMES, stage, stage_of_table

__all__ = [
    "RunError",
    "RunInfo",
    "combine_runs",
    "find_run_dirs",
    "list_runs",
    "mtime",
    "open_run",
    "read_run",
    "read_run_table",
    "run_signature",
    "table_path",
]

_HOST = socket.gethostname()


class RunError(ProbeError):
    """A run folder or one of its tables is missing or cannot be read."""


@dataclass(frozen=True)
class RunInfo:
    """What a run folder says about itself (from ``manifest.json`` and ``results/``).

    Attributes
    ----------
    path : the run folder.
    label : its path relative to the runs directory it was listed under (``study/timestamp``).
    study, status, created, finished : from the manifest (``status`` is ``running``,
        ``complete``, ``failed``, ``interrupted``; ``stopped`` when a ``running`` run's process
        is gone; ``broken`` when the manifest is unreadable).
    models : model labels of the study (``name`` or spec).
    jobs : names of the study's training jobs (the ``model`` of training/landscape tables).
    planned : stages the study runs (its sections that are set), in execution order.
    stages : ``stage -> status`` as the manifest records them (``done``, ``running``, ``failed``);
        ``stopped`` for a stage the manifest calls ``running`` in a run that is not.
    seconds : ``stage -> wall time`` for stages that finished or failed.
    tables : table names present in ``results/`` (sorted).
    figures : figure names the manifest lists.
    manifest : the whole manifest (empty when unreadable).
    error : a one-line reason when the folder is broken, else ``None``.
    updated : when the manifest (else the folder) was last written, seconds since the epoch; a
        run ``running`` with an old ``updated`` was probably killed.
    """

    path: Path
    label: str
    study: str = ""
    status: str = "unknown"
    created: str = ""
    finished: str = ""
    models: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    planned: tuple[str, ...] = ()
    stages: Mapping[str, str] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None
    updated: float = 0.0

    @property
    def compared(self) -> tuple[str, ...]:
        """What the run's tables call ``model``: study models (probe, embeddings), train jobs."""
        uses_models = any(s in self.planned for s in ("probe", "embeddings", "similarity"))
        return tuple(dict.fromkeys((*(self.models if uses_models else ()), *self.jobs)))

    @property
    def done(self) -> tuple[str, ...]:
        """Stages that finished (in execution order)."""
        return tuple(s for s in STAGE_NAMES if self.stages.get(s) == "done")

    @property
    def missing(self) -> tuple[str, ...]:
        """Planned stages that did not finish (not started, running, failed)."""
        return tuple(s for s in self.planned if self.stages.get(s) != "done")

    @property
    def missing_tables(self) -> tuple[str, ...]:
        """Always-written tables of planned stages that are not in ``results/`` yet (a stage whose
        tables are all optional, such as ``similarity``, is followed through :attr:`missing`)."""
        main = [t.name for s in self.planned for t in stage(s).tables if t.setting is None]
        return tuple(name for name in main if name not in self.tables)

    def asked_for(self, name: str) -> bool:
        """Whether the study asks for table ``name``: a table of a planned stage that is always
        written, or an optional one whose setting (the registry's ``TableSpec.setting``, e.g.
        ```probe.mix: true```) is on in the recorded config."""
        owner = stage_of_table(name)
        if owner is None or owner not in self.planned:
            return False
        setting = {t.name: t.setting for t in stage(owner).tables}[name]
        if setting is None:
            return True
        config = self.manifest.get("config")
        if not isinstance(config, Mapping) or not config:
            return True  # no config recorded: cannot tell, so assume it was asked for
        keys = re.findall(r"`(\w+)\.(\w+)", setting)  # `landscape.line`, `probe.mix: true`
        return any(
            isinstance(config.get(section), Mapping)
            and config[section].get(key) not in (None, False)
            for section, key in keys
        )

    def table_note(self, name: str) -> str:
        """Why table ``name`` is absent, in words: its stage's state, or the study setting that
        would have produced an optional table of a finished stage."""
        owner = stage_of_table(name)
        if owner is None:
            return f"no stage writes a table {name!r}"
        setting = {t.name: t.setting for t in stage(owner).tables}[name]
        if self.stages.get(owner) == "done" and setting is not None:
            return (
                f"its {owner} stage finished, and the study did not ask for this table "
                f"(set {setting})"
            )
        return self.stage_note(owner)

    def stage_note(self, name: str) -> str:
        """Why a stage's tables may be absent, in words (for "missing" messages)."""
        if self.error:
            return self.error
        if name not in self.planned:
            return f"the study {self.study or self.label!r} has no `{name}` section"
        status = self.stages.get(name)
        if status is None:
            written = stage(name).table_names if name in STAGE_NAMES else ()
            if any(table in self.tables for table in written):
                return f"the manifest records no {name} stage, but some of its tables exist"
            return f"the {name} stage has not started (run status: {self.status})"
        if status in ("running", "stopped") and self.status != "running":
            return f"the {name} stage stopped before finishing (run status: {self.status})"
        return f"the {name} stage is {status}"


def _subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder`` (sorted; unreadable folders have none)."""
    try:
        children = list(folder.iterdir())
    except OSError:
        return []
    return sorted(c for c in children if c.is_dir() and not c.name.startswith("."))


def _is_run_dir(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or any(
        (folder / marker).is_dir() for marker in RUN_SUBFOLDERS
    )


def find_run_dirs(runs_dir: str | Path) -> list[Path]:
    """Run folders under ``runs_dir``: ``runs_dir`` itself, ``*/`` or ``*/*/`` (newest first).

    A folder counts as a run when it has ``manifest.json`` or one of the sub-folders every run
    gets at creation (``results/``, ``figures/``, ...), so a run that broke before writing its
    manifest is still listed (as broken) rather than silently hidden. The usual layout is
    ``runs/<study>/<timestamp>/``; pointing at ``runs/<study>/`` or at one run also works.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    children = _subdirs(root)
    if (root / "manifest.json").is_file() or (
        _is_run_dir(root) and not any(_is_run_dir(c) for c in children)
    ):
        return [root]
    found = []
    for child in children:
        if _is_run_dir(child):
            found.append(child)  # runs_dir is a study folder, or runs sit directly in it
        else:
            found += [grandchild for grandchild in _subdirs(child) if _is_run_dir(grandchild)]
    # Newest first by folder name (timestamps sort), then by path for a stable order.
    return sorted(found, key=lambda p: (p.name, str(p)), reverse=True)


def run_signature(runs_dir: str | Path) -> tuple[tuple[str, float], ...]:
    """``(path, mtime)`` of every run's manifest and results folder: a cache key for listings.

    Changes whenever a run is added, a stage finishes (manifest rewritten) or a table appears.
    """
    out = []
    for folder in find_run_dirs(runs_dir):
        for part in (folder / "manifest.json", folder / "results"):
            try:
                out.append((str(part), part.stat().st_mtime))
            except OSError:
                out.append((str(part), 0.0))
    return tuple(out)


def _read_manifest(folder: Path) -> tuple[dict[str, Any], str | None]:
    path = folder / "manifest.json"
    if not path.is_file():
        return {}, f"{path} is missing (the run stopped before it started, or this is no run)"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"{path} cannot be read ({exc.__class__.__name__}: {exc})"
    except json.JSONDecodeError as exc:
        return {}, f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})"
    if not isinstance(manifest, dict):
        return {}, f"{path} holds a {type(manifest).__name__}, not a JSON object"
    return manifest, None


def _models(config: Mapping[str, Any]) -> tuple[str, ...]:
    labels = []
    for entry in config.get("models") or []:
        if isinstance(entry, str):
            labels.append(entry)
        elif isinstance(entry, Mapping):
            labels.append(str(entry.get("name") or entry.get("spec") or "?"))
    return tuple(labels)


def _jobs(config: Mapping[str, Any]) -> tuple[str, ...]:
    train = config.get("train")
    jobs = train.get("jobs") if isinstance(train, Mapping) else None
    return tuple(str(j["name"]) for j in jobs or [] if isinstance(j, Mapping) and "name" in j)


def _label(folder: Path, root: Path | None) -> str:
    if root is not None:
        try:
            relative = folder.resolve().relative_to(root.resolve())
            if str(relative) != ".":
                return relative.as_posix()
        except ValueError:
            pass
    return f"{folder.parent.name}/{folder.name}"


def read_run(folder: str | Path, runs_dir: str | Path | None = None) -> RunInfo:
    """What ``folder`` says about itself; never raises (a broken run has ``error`` set)."""
    folder = Path(folder)
    label = _label(folder, Path(runs_dir) if runs_dir is not None else None)
    tables = tuple(sorted(p.stem for p in (folder / "results").glob("*.parquet")))
    manifest, error = _read_manifest(folder)
    updated = mtime(folder / "manifest.json") or mtime(folder)
    if error is not None:
        return RunInfo(
            path=folder,
            label=label,
            study=folder.parent.name,
            status="broken",
            tables=tables,
            error=error,
            updated=updated,
        )
    config = manifest.get("config") or {}
    if not isinstance(config, Mapping):
        config = {}
    stages_raw = manifest.get("stages") or {}
    stages = {
        str(name): str(value.get("status", "?")) if isinstance(value, Mapping) else str(value)
        for name, value in (stages_raw.items() if isinstance(stages_raw, Mapping) else [])
    }
    seconds = {
        str(name): float(value["seconds"])
        for name, value in (stages_raw.items() if isinstance(stages_raw, Mapping) else [])
        if isinstance(value, Mapping) and isinstance(value.get("seconds"), int | float)
    }
    planned = tuple(s for s in STAGE_NAMES if config.get(s) is not None)
    if not config:  # an old or hand-written manifest: trust the stages it recorded
        planned = tuple(s for s in STAGE_NAMES if s in stages)
    status = _live_status(manifest)
    if status != "running":
        # A stage cannot still be running in a run that is not: it stopped with the run (killed,
        # out of memory), and saying "running" would promise curves that never come.
        stages = {name: "stopped" if v == "running" else v for name, v in stages.items()}
    return RunInfo(
        path=folder,
        label=label,
        study=str(manifest.get("study") or config.get("name") or folder.parent.name),
        status=status,
        created=str(manifest.get("created") or ""),
        finished=str(manifest.get("finished") or ""),
        models=_models(config),
        jobs=_jobs(config),
        planned=planned,
        stages=stages,
        seconds=seconds,
        tables=tables,
        figures=tuple(str(f) for f in manifest.get("figures") or []),
        manifest=manifest,
        updated=updated,
    )


def _live_status(manifest: Mapping) -> str:
    """The manifest's status, except that a ``running`` run whose process has died is ``stopped``.

    Only decidable on the machine that started the run (same host name); elsewhere, or for
    manifests without a pid, the recorded status stands.
    """
    status = str(manifest.get("status", "unknown"))
    pid = manifest.get("pid")
    if status != "running" or not isinstance(pid, int) or manifest.get("host") != _HOST:
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "stopped"
    except PermissionError:
        pass  # alive, owned by another user
    return status


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run folder under ``runs_dir`` (see :func:`find_run_dirs`), newest first."""
    return [read_run(folder, runs_dir) for folder in find_run_dirs(runs_dir)]


def open_run(path: str | Path) -> RunInfo:
    """One run folder, for commands that need it to exist (``probe export RUN``).

    Raises
    ------
    RunError
        When ``path`` does not exist, is not a folder, or is not a run folder. A run whose
        manifest is broken but whose tables are readable opens (with ``error`` set).
    """
    folder = Path(path)
    if not folder.exists():
        raise RunError(f"run folder {folder} does not exist; list runs with `probe list runs/`")
    if not folder.is_dir():
        raise RunError(f"{folder} is a file, not a run folder; pass runs/<study>/<timestamp>/")
    if not _is_run_dir(folder):
        nested = find_run_dirs(folder)
        hint = f" (it holds {len(nested)} run folder(s), e.g. {nested[0]})" if nested else ""
        raise RunError(
            f"{folder} is not a run folder: no manifest.json or results/{hint}; "
            "pass runs/<study>/<timestamp>/"
        )
    return read_run(folder, folder.parent.parent)


def table_path(run_dir: str | Path, name: str) -> Path:
    """``run_dir/results/<name>.parquet``."""
    return Path(run_dir) / "results" / f"{name}.parquet"


def read_run_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """Read table ``name`` of a run.

    Raises
    ------
    RunError
        One line naming the file when it is missing, truncated, not parquet, or of a newer schema.
    """
    path = table_path(run_dir, name)
    if not path.is_file():
        raise RunError(f"{path} does not exist (its stage has not written it yet)")
    try:
        return read_table(path)
    except (OSError, ValueError) as exc:
        # pyarrow raises ArrowInvalid (a ValueError) for a truncated or non-parquet file.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{path} cannot be read ({reason}); rerun its stage to rewrite it") from exc


def combine_runs(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Concatenate one table of several runs; with two or more, series are labelled by run.

    Figure builders draw one series per ``model``, so with several runs ``model`` becomes
    ``"<run> · <model>"`` (the original stays in ``model_name``) and a ``run`` column is added:
    the same figure then compares runs without any builder knowing about runs.

    Parameters
    ----------
    frames : ``run label -> table`` (tables with the same columns, e.g. two ``probe`` tables).
    """
    frames = {label: frame for label, frame in frames.items() if frame is not None}
    if not frames:
        return pd.DataFrame()
    parts = []
    for label, frame in frames.items():
        part = frame.copy()
        part["run"] = label
        if len(frames) > 1:
            part["model_name"] = part["model"]
            part["model"] = label + " · " + part["model"].astype("string").fillna("?")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def mtime(path: str | Path) -> float:
    """Modification time of ``path`` (0 when missing): the cache key next to the path."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
