"""Runs the stages of a study in order and owns the run folder.

The whole study is validated, and every model and dataset it names is checked, before any model is
loaded or any folder is created, so a typo fails in a second with exit code 2 and leaves no debris.
"""

from __future__ import annotations

import importlib
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from probe.cache import FeatureCache
from probe.models import load_config, resolve_model
from probe.rundir import RunContext, create_run_dir, find_resumable_run, resolve_device
from probe.study import Study, load_study

__all__ = ["STAGES", "check_study", "run_study"]


# Stage name -> (module, function). Imported only when a study runs that stage: validation and
# `probe list` should not pay for importing every stage.
_STAGE_FUNCTIONS = {
    "train": ("probe.training.stage", "run_training"),
    "probe": ("probe.probes.stage", "run_probes"),
    "embeddings": ("probe.embeddings.stage", "run_embeddings"),
    "landscape": ("probe.landscape.stage", "run_landscape"),
}


def _stage_function(name: str) -> Callable[[RunContext], None]:
    module, function = _STAGE_FUNCTIONS[name]
    return getattr(importlib.import_module(module), function)


STAGES = ("train", "probe", "embeddings", "landscape")


def check_study(study: Study) -> None:
    """Fail fast on what can be checked without heavy work: models, tasks and data files."""
    for entry in study.models:
        if entry.spec.startswith("trained:") or "trained:" in entry.spec:
            continue  # produced by this run's train stage
        load_config(resolve_model(entry.spec))  # reads config.json only; clear error if missing
    if study.probe is not None:
        from probe.probes.stage import check_probe_section

        check_probe_section(study)
    for name in ("train", "embeddings", "landscape"):
        section = getattr(study, name)
        check = getattr(section, "check", None)
        if callable(check):
            check(study)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (``kill``, a batch scheduler's time limit) like Ctrl-C while a run works.

    Without this the process dies without unwinding, and the manifest says ``running`` forever;
    with it the run is marked ``interrupted`` and ``probe run --resume`` picks it up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_study(
    path: str | Path,
    *,
    runs_dir: str | Path | None = None,
    resume: bool = False,
    console: Console | None = None,
) -> Path:
    """Run every stage of the study at ``path``; returns the run folder."""
    console = console or Console()
    study = load_study(path)
    check_study(study)
    device = resolve_device(study.device)
    run_dir = find_resumable_run(study, runs_dir) if resume else None
    if run_dir is None:
        run_dir = create_run_dir(study, runs_dir)
    else:
        console.print(f"resuming unfinished run {run_dir}")
    ctx = RunContext(
        study=study, run_dir=run_dir, device=device, cache=FeatureCache(), console=console
    )
    ctx.start()
    console.print(f"run folder: [bold]{run_dir}[/bold]  device: {device}")
    seed_everything(study.seed)
    try:
        with _terminate_as_interrupt():
            for name in study.stages:
                with ctx.stage(name):
                    _stage_function(name)(ctx)
    except KeyboardInterrupt:
        ctx.finish("interrupted")
        raise
    except Exception:
        ctx.finish("failed")
        raise
    ctx.finish("complete")
    return run_dir
