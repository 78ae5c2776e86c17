"""``probe export``: every figure of a run, rebuilt from its tables, written in one style.

The figures are those of the stage registry (:mod:`probe.stages`), built by the one figure path
:func:`probe.figures.groups.build_figures` that the runner and the dashboard use too. The paper
style (serif fonts, single/double column widths, Okabe-Ito colours) goes as PDF/SVG/PNG into
``RUN/figures/paper/`` in one kaleido call; ``--style screen`` writes the figures of the run
folder again (same names, same images) into ``RUN/figures/screen/``.

Figures come from the run's tables alone, never from models or caches, so exporting an old run
again with a newer style needs nothing but its ``results/`` folder.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from probe.errors import ProbeError
from probe.figures.groups import STYLES, Style, build_figures
from probe.runs import RunError, open_run, read_run_table
from probe.stages import figure_groups

__all__ = [
    "FORMATS",
    "SCALE",
    "ExportError",
    "ExportResult",
    "export_run",
    "figures_for_run",
    "parse_formats",
]

FORMATS = ("pdf", "svg", "png", "html")
#: PNG resolution per style: paper figures are sized in CSS pixels at 96 px/in, so 300/96 gives
#: 300 dpi; screen figures are written at twice their size, as the run writes them.
SCALE = {"paper": 300 / 96, "screen": 2.0}


class ExportError(ProbeError):
    """Bad export options, or nothing could be exported."""


def _read_tables(run_dir: Path, names: Iterable[str]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Tables that exist and read; ``(tables, {name: reason})`` for the ones that do not."""
    tables, problems = {}, {}
    for name in names:
        try:
            tables[name] = read_run_table(run_dir, name)
        except RunError as exc:
            problems[name] = str(exc)
    return tables, problems


def _figure_tables(present: Iterable[str]) -> list[str]:
    """Tables some figure group reads, of those ``present`` (in registry order)."""
    present = set(present)
    return [n for g in figure_groups() for n in g.all_tables if n in present]


def figures_for_run(run_dir: str | Path, style: Style = "paper") -> dict[str, go.Figure]:
    """Every figure of the run at ``run_dir``, rebuilt from its tables in ``style``.

    Groups whose tables are missing or unreadable are left out (see :func:`export_run` for a
    report of what was left out and why).
    """
    info = open_run(run_dir)
    tables, _ = _read_tables(info.path, _figure_tables(info.tables))
    return build_figures(tables, style)


# --------------------------------------------------------------------------- export


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"pdf,svg"`` or ``["pdf", "svg"]`` -> ``("pdf", "svg")``; unknown names raise."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = []
    for item in (i.strip().lower().lstrip(".") for i in items):
        if not item:
            continue
        if item not in FORMATS:
            close = difflib.get_close_matches(item, FORMATS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ExportError(f"--format: unknown format {item!r}{hint}; use {', '.join(FORMATS)}")
        if item not in out:
            out.append(item)
    if not out:
        raise ExportError(f"--format: no format given; use one or more of {', '.join(FORMATS)}")
    return tuple(out)


@dataclass
class ExportResult:
    """What :func:`export_run` wrote, and what it left out and why."""

    folder: Path
    figures: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    partial: dict[str, str] = field(default_factory=dict)


def export_run(
    run_dir: str | Path,
    *,
    formats: str | Sequence[str] = ("pdf", "svg", "png"),
    style: str = "paper",
    out: str | Path | None = None,
) -> ExportResult:
    """Write every figure of a run in ``formats`` into ``out`` (default ``RUN/figures/<style>``).

    All static images are rendered in one kaleido call (one browser start).

    Raises
    ------
    RunError
        ``run_dir`` is not a run folder.
    ExportError
        Unknown format or style, no figure could be built, or static export failed (no Chromium).
    """
    from probe.figures.export import StaticExportError, write_figures
    from probe.figures.style import mark_partial

    formats = parse_formats(formats)
    if style not in STYLES:
        close = difflib.get_close_matches(style, STYLES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ExportError(f"--style: unknown style {style!r}{hint}; use {', '.join(STYLES)}")
    info = open_run(run_dir)
    tables, problems = _read_tables(info.path, _figure_tables(info.tables))
    result = ExportResult(folder=Path(out) if out is not None else info.path / "figures" / style)
    for group in figure_groups():
        absent = [n for n in group.tables if n not in tables]
        if absent:
            reason = "; ".join(problems.get(n, f"no results/{n}.parquet") for n in absent)
            # Only tables the study asked for are worth a message (no `probe` section, or no
            # `probe.mix`, means no such figures, not skipped ones) when their stage did not
            # finish or they cannot be read.
            unfinished = group.stage in info.missing
            if any(n in problems for n in absent) or (
                unfinished and any(info.asked_for(n) for n in absent)
            ):
                result.skipped[group.key] = f"{reason} ({info.stage_note(group.stage)})"
        elif group.stage in info.missing:
            result.partial[group.key] = info.stage_note(group.stage)
    figures: dict[str, go.Figure] = {}
    for group in figure_groups():
        built = build_figures(tables, style, groups=[group.key])  # type: ignore[arg-type]
        if group.key in result.partial:  # a stopped run's curves: say so on the figure
            for figure in built.values():
                mark_partial(figure, result.partial[group.key])
        figures.update(built)
    if not figures:
        detail = "; ".join(f"{k}: {v}" for k, v in result.skipped.items()) or "no result tables"
        raise ExportError(f"{info.path}: nothing to export ({detail})")
    try:
        result.paths = write_figures(figures, result.folder, formats, scale=SCALE[style])
    except StaticExportError as exc:
        raise ExportError(f"{exc}; `--format html` needs no browser") from exc
    result.figures = list(figures)
    return result
