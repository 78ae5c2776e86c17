"""The ``probe`` command: thin wrappers over the runner; no logic of its own."""

from __future__ import annotations

import errno
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from probe.errors import DiskFullError, ProbeError, RunInterruptedError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Layer-wise probing and analysis of BERT-family encoders.",
)
# Piped output (logs, CI) would wrap at rich's 80-column default and squeeze the summary tables.
console = Console(width=None if sys.stdout.isatty() else 132)


_SET_HELP = "Override a study setting: KEY=VALUE, dotted key, YAML value (repeatable)"
_SWEEP_HELP = "Run one study per value: KEY=V1,V2,... (repeatable: every combination)"


@app.command()
def run(
    studies: Annotated[
        list[Path], typer.Argument(help="Study YAML file(s), e.g. studies/layerwise_pos.yaml")
    ],
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    sweep: Annotated[list[str] | None, typer.Option("--sweep", help=_SWEEP_HELP)] = None,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run folders go (default: study's runs_dir)")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the newest unfinished run of this study")
    ] = False,
) -> None:
    """Run studies end to end; each study (and each sweep value) gets a new run folder."""
    from probe.runner import run_studies

    run_dirs = run_studies(
        studies,
        overrides=set_ or [],
        sweeps=sweep or [],
        runs_dir=runs_dir,
        resume=resume,
        console=console,
    )
    for run_dir in run_dirs:
        console.print(f"[green]done[/green]: {run_dir}")


@app.command()
def check(
    studies: Annotated[list[Path], typer.Argument(help="Study YAML file(s) to check")],
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    sweep: Annotated[list[str] | None, typer.Option("--sweep", help=_SWEEP_HELP)] = None,
) -> None:
    """Check studies without running them: schema, overrides, data files and model specs.

    Lists every problem, one per line, and exits with status 2 if there is any.
    """
    from probe.validate import check_studies

    results = check_studies(studies, set_ or [], sweep or [])
    n_problems = 0
    for label, study, problems in results:
        if study is not None:
            stages = ", ".join(study.stages) or "no stages"
            console.print(f"[green]ok[/green]: {label} ({stages})")
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        n_problems += len(problems)
    if n_problems:
        print(f"{n_problems} problem{'s' * (n_problems != 1)} found", file=sys.stderr)
        raise typer.Exit(2)


@app.command("list")
def list_runs(
    runs_dir: Annotated[Path, typer.Argument(help="Folder of run folders")] = Path("runs"),
) -> None:
    """List run folders with their study, models, status and stages (newest first)."""
    from probe.runs import list_runs as read_runs

    runs = read_runs(runs_dir)
    if not runs:
        console.print(
            f"no runs under {runs_dir}/ yet; start one with `probe run studies/layerwise_pos.yaml`"
        )
        return
    table = Table()
    table.add_column("run", no_wrap=True)  # the path users copy into `probe export`
    for column in ("models", "status", "stages done", "missing"):
        table.add_column(column)
    for info in runs:
        status = f"[red]{info.status}: {info.error}[/red]" if info.error else info.status
        table.add_row(
            info.label,
            ", ".join(info.compared),
            status,
            ", ".join(
                f"{s} ({info.seconds[s]:.0f} s)" if s in info.seconds else s for s in info.done
            ),
            ", ".join(info.missing),
        )
    console.print(table)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run folder, e.g. runs/pipeline/20260101-120000")],
    formats: Annotated[
        str, typer.Option("--format", help="Comma-separated formats: pdf, svg, png, html")
    ] = "pdf,svg,png",
    style: Annotated[str, typer.Option(help="paper (serif, column widths) or screen")] = "paper",
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: RUN/figures/<style>/)")
    ] = None,
) -> None:
    """Rebuild every figure of a run from its tables and write it for a paper."""
    from probe.export import export_run

    result = export_run(run, formats=formats, style=style, out=out)
    for key, reason in result.skipped.items():
        console.print(f"[yellow]skipped {key}[/yellow]: {reason}")
    for key, reason in result.partial.items():
        console.print(f"[yellow]partial {key}[/yellow]: {reason}; figures marked PARTIAL")
    files, figures = len(result.paths), len(result.figures)
    console.print(
        f"[green]wrote[/green] {files} file{'s' * (files != 1)} ({figures} "
        f"figure{'s' * (figures != 1)}) to {result.folder}"
    )


@app.command()
def examples(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Where to write them (default: examples/own_data, read by the study)"),
    ] = None,
) -> None:
    """Write the tiny example files of studies/own_data.yaml (German template sentences)."""
    from probe.data.examples import DEFAULT_FOLDER, write_own_data_examples

    written = write_own_data_examples(folder or DEFAULT_FOLDER)
    n_files = sum(1 for p in written.rglob("*") if p.is_file())
    console.print(f"[green]wrote[/green] {n_files} example files to {written}/")


def main() -> None:
    """Entry point of the ``probe`` command; exits with :func:`run_command`'s status."""
    sys.exit(run_command(sys.argv[1:]))


def run_command(args: list[str]) -> int:
    """Run one command; return its exit status after printing at most one line to stderr.

    0: the command completed (for ``run``: the run is ``complete``); 130: interrupted (Ctrl-C,
    SIGTERM); 2: bad input (a :class:`ProbeError` or a usage error); 1: anything else. A
    failure prints its cause on one line (``PROBE_DEBUG=1`` adds the traceback).
    """
    try:
        status = app(args, prog_name="probe", standalone_mode=False)
    except ProbeError as exc:
        return _fail(exc, 2)
    except RunInterruptedError as exc:
        return _fail(exc, 130, prefix="")
    except (KeyboardInterrupt, typer.Abort) as exc:
        # typer turns EOFError into Abort; a truncated file must not pass for an interrupt.
        cause = exc.__cause__ if isinstance(exc, typer.Abort) else None
        if cause is not None and not isinstance(cause, KeyboardInterrupt):
            return _fail(cause, 1)
        return _fail(exc, 130, message="interrupted", prefix="")
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            return 2
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        return _fail(exc, 2, message=f"{exc.format_message().rstrip('.')}{where}")
    except Exception as exc:
        return _fail(exc, 1)
    if status == 130:  # typer's answer to Ctrl-C before a run had started
        return _fail(None, 130, message="interrupted", prefix="")
    return int(status or 0)


def _fail(
    exc: BaseException | None, status: int, *, message: str | None = None, prefix: str = "error: "
) -> int:
    if message is None:
        assert exc is not None
        message = str(exc)
        if status == 1 and not isinstance(exc, DiskFullError):  # not the user's doing: name it
            message = f"{type(exc).__name__}: {message}"
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = f"no space left on the device ({exc.filename or exc}); free some space"
    notes = getattr(exc, "__notes__", None) or []
    if status == 1 and os.environ.get("PROBE_DEBUG") != "1":
        notes = [*notes, "PROBE_DEBUG=1 prints the traceback"]
    line = "; ".join([message, *notes]) if notes else message
    if exc is not None and status == 1 and os.environ.get("PROBE_DEBUG") == "1":
        traceback.print_exception(exc, file=sys.stderr)
    print(prefix + " ".join(line.split()), file=sys.stderr)  # one line, whatever the message
    return status


if __name__ == "__main__":
    main()
