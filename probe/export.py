"""Every figure of a run, rebuilt from its tables: the registry and ``probe export``.

:data:`FIGURE_GROUPS` is the one list of what figures a run has: one group per kind of table, each
naming the tables it needs and a builder ``tables, style -> {name: figure}`` that calls the pure
figure builders of :mod:`probe.figures`. The dashboard shows the same groups (style ``screen``);
:func:`export_run` writes them in the paper style (serif fonts, single/double column widths,
Okabe-Ito colours) as PDF/SVG/PNG into ``RUN/figures/paper/`` in one kaleido call.

Figures come from the run's tables alone, never from models or caches, so exporting an old run
again with a newer style needs nothing but its ``results/`` folder.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import plotly.graph_objects as go

from probe.errors import ProbeError
from probe.runs import RunError, open_run, read_run_table

__all__ = [
    "FIGURE_GROUPS",
    "FORMATS",
    "ExportError",
    "ExportResult",
    "FigureGroup",
    "build_figures",
    "export_run",
    "figures_for_run",
    "group_tables",
    "parse_formats",
]

Style = Literal["screen", "paper"]
FORMATS = ("pdf", "svg", "png", "html")
STYLES = ("paper", "screen")
# PNG resolution: paper figures are sized in CSS pixels at 96 px/in, so 300/96 gives 300 dpi.
_SCALE = {"paper": 300 / 96, "screen": 2.0}


class ExportError(ProbeError):
    """Bad export options, or nothing could be exported."""


# --------------------------------------------------------------------------- builders


def _slug(text: str) -> str:
    """A file-name-safe version of a label (model labels may hold ``/``, ``:`` or ``·``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def _probe_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, *, split: str = "test", **_: object
) -> dict[str, go.Figure]:
    from probe.figures.probing import layerwise_figures

    return layerwise_figures(tables["probe"], split=split, style=style)


def _summary_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, **_: object
) -> dict[str, go.Figure]:
    from probe.figures.pipeline import mix_weights_heatmap, pipeline_figure

    summary = tables["probe_summary"]
    figures = {"pipeline": pipeline_figure(summary, style=style)}
    if (summary["metric"] == "mix_weight").any():
        for model in summary["model"].dropna().unique():
            figures[f"mix_weights_{_slug(model)}"] = mix_weights_heatmap(
                summary, str(model), style=style
            )
    return figures


def _training_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, *, smooth: int | None = None, **_: object
) -> dict[str, go.Figure]:
    from probe.figures.training import training_curves

    # Same figures as probe.figures.training.training_figures (one per task, every job of the
    # task on it), which has no style argument.
    table = tables["training"]
    figures = {}
    for task, rows in table.groupby("task", sort=False):
        figures[f"training_{_slug(task)}"] = training_curves(
            rows,
            models=list(rows["model"].drop_duplicates()),
            title=f"training: {task}",
            smooth=smooth,
            style=style,
        )
    return figures


def _embeddings_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, **_: object
) -> dict[str, go.Figure]:
    from probe.figures.embeddings import embeddings_figures

    return embeddings_figures(tables["embeddings"], style=style)


def _landscape_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, **_: object
) -> dict[str, go.Figure]:
    from probe.figures.landscape import landscape_figures

    return landscape_figures(
        trajectory=tables["landscape_trajectory"],
        line=tables.get("landscape_1d"),
        plane=tables.get("landscape_2d"),
        sharpness=tables.get("sharpness"),
        style=style,
    )


def _ablation_figures(
    tables: Mapping[str, pd.DataFrame], style: Style, **_: object
) -> dict[str, go.Figure]:
    from probe.figures.ablations import ablation_figures

    return ablation_figures(tables["training"], tables.get("probe"), style=style)


@dataclass(frozen=True)
class FigureGroup:
    """One kind of result and the figures drawn from it.

    Attributes
    ----------
    key : short name (``probe``, ``summary``, ``training``, ``ablations``, ``embeddings``,
        ``landscape``).
    title : heading for the dashboard.
    stage : the stage that writes the tables.
    tables : tables the builder needs (all of them).
    optional : tables the builder uses when present.
    build : ``(tables, style, **options) -> {figure name: figure}``; options a builder does not
        know are ignored (``split`` for probe curves, ``smooth`` for training curves).
    """

    key: str
    title: str
    stage: str
    tables: tuple[str, ...]
    build: Callable[..., dict[str, go.Figure]]
    optional: tuple[str, ...] = ()

    @property
    def all_tables(self) -> tuple[str, ...]:
        return (*self.tables, *self.optional)


#: The figures a run can have, in the order of the stages that write their tables.
FIGURE_GROUPS: tuple[FigureGroup, ...] = (
    FigureGroup("training", "Training curves", "train", ("training",), _training_figures),
    FigureGroup("ablations", "Pretraining ablations", "train", ("training",), _ablation_figures,
                optional=("probe",)),
    FigureGroup("probe", "Layer-wise probes", "probe", ("probe",), _probe_figures),
    FigureGroup("summary", "Cross-task summary", "probe", ("probe_summary",), _summary_figures),
    FigureGroup("embeddings", "Sentence embeddings", "embeddings", ("embeddings",),
                _embeddings_figures),
    FigureGroup("landscape", "Loss landscapes", "landscape", ("landscape_trajectory",),
                _landscape_figures, optional=("landscape_1d", "landscape_2d", "sharpness")),
)  # fmt: skip
_GROUPS = {group.key: group for group in FIGURE_GROUPS}


def group_tables(key: str) -> tuple[str, ...]:
    """Every table group ``key`` reads (needed first, then optional)."""
    return _GROUPS[key].all_tables


def build_figures(
    tables: Mapping[str, pd.DataFrame],
    style: Style = "screen",
    groups: Iterable[str] | None = None,
    **options: object,
) -> dict[str, go.Figure]:
    """Every figure the given tables allow (groups whose needed tables are all present).

    Parameters
    ----------
    tables : ``table name -> table`` (e.g. ``{"probe": ..., "probe_summary": ...}``).
    style : ``screen`` (dashboard, HTML) or ``paper``.
    groups : keys of :data:`FIGURE_GROUPS` to build (default: all).
    **options : passed to every group's builder (``split="dev"`` for the probe curves, ...).
    """
    keys = list(groups) if groups is not None else [g.key for g in FIGURE_GROUPS]
    figures: dict[str, go.Figure] = {}
    for key in keys:
        group = _GROUPS[key]
        present = {n: tables[n] for n in group.all_tables if tables.get(n) is not None}
        if all(n in present and not present[n].empty for n in group.tables):
            figures.update(group.build(present, style, **options))
    return figures


def _read_tables(run_dir: Path, names: Iterable[str]) -> tuple[dict[str, pd.DataFrame], dict]:
    """Tables that exist and read; ``(tables, {name: reason})`` for the ones that do not."""
    tables, problems = {}, {}
    for name in names:
        try:
            tables[name] = read_run_table(run_dir, name)
        except RunError as exc:
            problems[name] = str(exc)
    return tables, problems


def figures_for_run(run_dir: str | Path, style: Style = "paper") -> dict[str, go.Figure]:
    """Every figure of the run at ``run_dir``, rebuilt from its tables in ``style``.

    Groups whose tables are missing or unreadable are left out (see :func:`export_run` for a
    report of what was left out and why).
    """
    info = open_run(run_dir)
    names = [n for g in FIGURE_GROUPS for n in g.all_tables if n in info.tables]
    tables, _ = _read_tables(info.path, names)
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

    formats = parse_formats(formats)
    if style not in STYLES:
        close = difflib.get_close_matches(style, STYLES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ExportError(f"--style: unknown style {style!r}{hint}; use {', '.join(STYLES)}")
    info = open_run(run_dir)
    names = [n for g in FIGURE_GROUPS for n in g.all_tables if n in info.tables]
    tables, problems = _read_tables(info.path, names)
    result = ExportResult(folder=Path(out) if out is not None else info.path / "figures" / style)
    for group in FIGURE_GROUPS:
        absent = [n for n in group.tables if n not in tables]
        if absent:
            reason = "; ".join(problems.get(n, f"no results/{n}.parquet") for n in absent)
            # A finished stage without the table was not asked for it (e.g. no probe.mix):
            # only unfinished stages and unreadable tables are worth a message.
            unfinished = group.stage in info.missing
            if unfinished or any(n in problems for n in absent):
                result.skipped[group.key] = f"{reason} ({info.stage_note(group.stage)})"
    figures = build_figures(tables, style)  # type: ignore[arg-type]
    if not figures:
        detail = "; ".join(f"{k}: {v}" for k, v in result.skipped.items()) or "no result tables"
        raise ExportError(f"{info.path}: nothing to export ({detail})")
    try:
        result.paths = write_figures(figures, result.folder, formats, scale=_SCALE[style])
    except StaticExportError as exc:
        raise ExportError(f"{exc}; `--format html` needs no browser") from exc
    result.figures = list(figures)
    return result
