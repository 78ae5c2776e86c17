"""Names inside a run folder, shared by the writer (:mod:`probe.rundir`) and the readers
(:mod:`probe.runs`, the dashboard) without either importing the other.

A run folder ``<runs_dir>/<study>/<timestamp>/`` holds :data:`MANIFEST`, ``study.yaml`` and the
sub-folders :data:`RUN_SUBFOLDERS`: ``results/<table>.parquet`` (+ CSV twin), ``figures/``,
``checkpoints/`` and ``logs/``.
"""

from __future__ import annotations

__all__ = ["MANIFEST", "RUN_SUBFOLDERS"]

MANIFEST = "manifest.json"
#: Made by ``create_run_dir`` before the manifest is written, so a run that died at start-up has
#: them and nothing else (readers count a folder with one of them as a run).
RUN_SUBFOLDERS = ("results", "figures", "checkpoints", "logs")
