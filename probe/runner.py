"""Runs the stages of a study in order and owns the run folder.

The whole study is validated, and every model and dataset it names is checked, before any model is
loaded or any folder is created, so a typo fails in a second with exit code 2 and leaves no debris.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from probe.cache import FeatureCache
from probe.errors import RunInterruptedError, StudyError
from probe.figures.groups import build_figures
from probe.overrides import sweep_overrides
from probe.rundir import RunContext, RunLock, create_run_dir, find_resumable_run
from probe.runtime import resolve_device, seed_everything
from probe.stages import figure_groups, load_function, stage
from probe.study import Study
from probe.timing import breakdown, breakdown_table
from probe.trackers import Trackers, resolve_report_to
from probe.validate import check_study, validate_study

if TYPE_CHECKING:
    import torch

__all__ = ["check_study", "plan_runs", "run_studies", "run_study"]


def stage_figures(ctx: RunContext, name: str) -> list[str]:
    """Draw, into ``RUN/figures/``, every figure group that reads a table stage ``name`` writes.

    The same path as ``probe export --style screen`` and the dashboard
    (:func:`probe.figures.groups.build_figures`): stages write tables only. A group that also
    reads a later stage's table (ablations read ``probe``) is drawn again after that stage, so
    the finished run has the figures an export of it has. Returns the names drawn.
    """
    written = set(stage(name).table_names)
    groups = [g for g in figure_groups() if written & set(g.all_tables)]
    groups = [g for g in groups if _figures_wanted(ctx, g.stage)]
    names = dict.fromkeys(t for group in groups for t in group.all_tables)
    tables = {t: ctx.read_table(t) for t in names if ctx.has_table(t)}
    figures = build_figures(tables, "screen", groups=[group.key for group in groups])
    ctx.save_figures(figures)
    return list(figures)


def _figures_wanted(ctx: RunContext, name: str) -> bool:
    """False when the stage's section turns its figures off (``train.figures: false``)."""
    entry = stage(name)
    section = getattr(ctx.study, name)
    if entry.figures_setting is None or section is None:
        return True
    return bool(getattr(section, entry.figures_setting))


def is_main_process() -> bool:
    """Whether this is the main process of a distributed launch (or no launch): the one that
    writes tables and figures. ``accelerate launch`` and ``torchrun`` set ``RANK``."""
    return int(os.environ.get("RANK", "0")) == 0


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
    overrides: Sequence[str] = (),
    runs_dir: str | Path | None = None,
    resume: bool = False,
    console: Console | None = None,
) -> Path:
    """Run every stage of the study at ``path`` (with ``--set`` ``overrides``); returns the run
    folder.

    Raises
    ------
    RunInterruptedError
        Ctrl-C or SIGTERM stopped the run; its folder is marked ``interrupted``.
    ProbeError
        Bad input (before any work, or found late); the folder, if any, is marked ``failed``.
    Exception
        Anything else; the folder is marked ``failed``, the traceback is in its ``logs/``, and
        the exception carries a note naming the folder.
    """
    console = console or Console()
    study = validate_study(path, overrides)
    device = resolve_device(study.device)
    run_dir = find_resumable_run(study, runs_dir) if resume else None
    resuming = run_dir is not None
    if run_dir is None:
        run_dir = create_run_dir(study, runs_dir)
    with RunLock(run_dir):  # a second `--resume` of this folder stops here, naming this process
        if resuming:
            console.print(f"resuming unfinished run {run_dir}")
        _run_stages(study, path, overrides, run_dir, device, console)
    return run_dir


def _run_stages(
    study: Study,
    path: str | Path,
    overrides: Sequence[str],
    run_dir: Path,
    device: torch.device,
    console: Console,
) -> None:
    def warn(message: str) -> None:
        console.print(Text(f"warning: {message}", style="yellow"))

    ctx = RunContext(
        study=study,
        run_dir=run_dir,
        device=device,
        cache=FeatureCache(warn=warn),
        console=console,
        overrides=tuple(overrides),
    )
    ctx.start()
    console.print(f"run folder: [bold]{run_dir}[/bold]  device: {device}")
    try:
        seed_everything(study.seed)
        trackers = resolve_report_to(study.report_to) if is_main_process() else []
        if trackers:
            config = study.model_dump(mode="json")
            ctx.trackers = Trackers(trackers, run_dir, f"{study.name}/{run_dir.name}", config)
            console.print(f"reporting to {', '.join(trackers)} (logs in {run_dir / 'logs'})")
        with _terminate_as_interrupt():
            for name in study.stages:
                with ctx.stage(name):
                    load_function(stage(name).run)(ctx)
                    if is_main_process():
                        with ctx.timed("figures"):
                            stage_figures(ctx, name)
    except KeyboardInterrupt as exc:
        ctx.finish("interrupted")
        resume = " ".join([f"probe run {path}", *(f"--set {o}" for o in overrides), "--resume"])
        raise RunInterruptedError(
            f"interrupted; {run_dir} is marked interrupted; `{resume}` continues it"
        ) from exc
    except Exception as exc:
        ctx.finish("failed")
        saved = ctx.save_traceback("".join(traceback.format_exception(exc)))
        where = f"; traceback in {saved}" if saved else ""
        exc.add_note(f"{run_dir} is marked failed{where}")
        raise
    finally:
        if ctx.trackers is not None:
            ctx.trackers.close()
    console.print(breakdown_table(breakdown(ctx.manifest)))
    ctx.finish("complete")


def plan_runs(
    paths: Sequence[str | Path], overrides: Sequence[str] = (), sweeps: Sequence[str] = ()
) -> list[tuple[Path, list[str]]]:
    """One ``(study file, overrides)`` per run: every file times every combination of sweeps."""
    return [
        (Path(path), [*overrides, *combo]) for path in paths for combo in sweep_overrides(sweeps)
    ]


def run_studies(
    paths: Sequence[str | Path],
    *,
    overrides: Sequence[str] = (),
    sweeps: Sequence[str] = (),
    runs_dir: str | Path | None = None,
    resume: bool = False,
    console: Console | None = None,
) -> list[Path]:
    """Run several studies, or one study per sweep value, each in its own run folder.

    Every run is validated before the first one starts, so a typo in the last study (or sweep
    value) fails in seconds rather than after hours of the first.
    """
    console = console or Console()
    plan = plan_runs(paths, overrides, sweeps)
    if len(plan) > 1:
        problems = []
        for path, run_overrides in plan:
            try:
                validate_study(path, run_overrides)
            except StudyError as exc:
                problems += exc.problems
        if problems:
            raise StudyError.of(list(dict.fromkeys(problems)))
    run_dirs = []
    for index, (path, run_overrides) in enumerate(plan, start=1):
        if len(plan) > 1:
            shown = " ".join(f"--set {o}" for o in run_overrides)
            console.rule(f"[bold]run {index}/{len(plan)}: {path} {shown}")
        run_dirs.append(
            run_study(
                path, overrides=run_overrides, runs_dir=runs_dir, resume=resume, console=console
            )
        )
    return run_dirs
