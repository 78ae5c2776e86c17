"""What every dashboard page shares: cached reads of run folders, messages, figure downloads.

The dashboard only reads: listings and tables come from :mod:`probe.runs`, figures from the
stage registry through :func:`probe.figures.groups.build_figures` (the same figures the run and
``probe export`` write) and the builders in
:mod:`probe.figures`. Reads are cached with ``st.cache_data`` keyed on the file's path and
modification time, so a stage that rewrites a table shows up on the next rerun and nothing else
is read twice.
"""

from __future__ import annotations

import functools
import os
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from probe.figures.export import static_image
from probe.figures.groups import build_figures
from probe.figures.style import series_colors
from probe.runs import (
    RunError,
    RunInfo,
    combine_runs,
    list_runs,
    mtime,
    read_run_table,
    run_signature,
    table_path,
)
from probe.stages import figure_groups

DEFAULT_RUNS_DIR = "runs"
RUNS_DIR_KEY = "runs_dir"
SELECTED_KEY = "selected_runs"
UNKNOWN_LINK_KEY = "_unknown_link_runs"
LINK_SELECTION_KEY = "_link_selection"
_ROOT_KEY = "_configured_runs_dir"
_GROUPS = {group.key: group for group in figure_groups()}
_MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf",
         "html": "text/html", "csv": "text/csv"}  # fmt: skip


# --------------------------------------------------------------------------- cached reads


@st.cache_data(show_spinner=False, max_entries=16)
def _list_runs(runs_dir: str, signature: tuple[tuple[str, float], ...]) -> list[RunInfo]:
    # `signature` is only the cache key: it changes when a manifest or results/ folder does.
    del signature
    return list_runs(runs_dir)


@st.cache_data(show_spinner=False, max_entries=128)
def _read_table(run_dir: str, name: str, modified: float) -> pd.DataFrame:
    del modified  # cache key: a rewritten table has a new mtime
    return read_run_table(run_dir, name)


def runs_in(runs_dir: str | Path) -> list[RunInfo]:
    """Every run folder under ``runs_dir`` (cached until a manifest or results folder changes)."""
    return _list_runs(str(runs_dir), run_signature(runs_dir))


def read_table(run: RunInfo, name: str) -> pd.DataFrame:
    """Table ``name`` of ``run`` (cached on path + mtime); raises :class:`RunError`."""
    return _read_table(str(run.path), name, mtime(table_path(run.path, name)))


# --------------------------------------------------------------------------- text from run folders

# Markdown that Streamlit would act on: links and images need brackets (a browser fetches an
# image URL), autolinks and HTML angle brackets; code, emphasis, tables, headings, LaTeX ($) and
# directives (:red[...]) change how a name reads. Parentheses alone do nothing and stay.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]#|<>~$])")
_BACKTICKS = re.compile(r"`+")


def _escape(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


def md(value: object) -> str:
    """``value`` as literal text inside Streamlit Markdown, on one line; code spans are kept.

    Names, statuses and errors come from run folders, which anyone who can write the runs
    directory controls; rendered raw, a study called ``![x](http://host/p.png)`` would make every
    viewer's browser fetch that URL. Everything outside code spans is escaped; a code span (a run
    of n backticks up to the next run of exactly n, as CommonMark pairs them) shows its content
    literally already, so messages like ``(set `probe.mix: true`)`` keep their formatting.

    >>> md("![x](http://h/p.png) `a*b`")
    '!\\\\[x\\\\](http://h/p.png) `a*b`'
    """
    text = " ".join(str(value).split())
    out, done = [], 0
    runs = list(_BACKTICKS.finditer(text))
    i = 0
    while i < len(runs):
        opener = runs[i]
        close = next(
            (j for j in range(i + 1, len(runs)) if len(runs[j].group()) == len(opener.group())),
            None,
        )
        if close is None:
            i += 1  # an unmatched backtick run is literal text: escaped below
            continue
        out.append(_escape(text[done : opener.start()]))
        out.append(text[opener.start() : runs[close].end()])
        done = runs[close].end()
        i = close + 1
    out.append(_escape(text[done:]))
    return "".join(out)


def code(value: object) -> str:
    """``value`` as an inline code span (literal text, monospace), on one line.

    >>> code("a`b")
    '`` a`b ``'
    """
    text = " ".join(str(value).split())
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# --------------------------------------------------------------------------- session


def configured_runs_dir() -> Path:
    """The one folder the dashboard may read: ``$PROBE_RUNS_DIR``, else ``runs``.

    A link cannot change it (``?runs_dir=`` is ignored): whoever can open the dashboard could
    otherwise read ``manifest.json``, ``study.yaml`` and tables of any folder on the server.
    Read once per browser session (kept server-side, where no widget or link can change it).
    """
    if _ROOT_KEY not in st.session_state:
        st.session_state[_ROOT_KEY] = os.environ.get("PROBE_RUNS_DIR") or DEFAULT_RUNS_DIR
    return Path(st.session_state[_ROOT_KEY])


def default_runs_dir() -> str:
    """The configured runs directory, as the sidebar shows it."""
    return str(configured_runs_dir())


def within_runs_dir(folder: str | Path) -> Path | None:
    """``folder`` when it is the configured runs directory or inside it, else None."""
    root = configured_runs_dir().resolve()
    path = Path(folder).expanduser()
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    return path if resolved == root or resolved.is_relative_to(root) else None


def default_selection(runs: Sequence[RunInfo]) -> list[str]:
    """The newest finished run with tables (else the newest unbroken one with tables): never a
    stopped or failed run while a complete one exists."""
    usable = [run for run in runs if run.tables and not run.error]
    for run in usable:
        if run.status == "complete":
            return [run.label]
    return [usable[0].label] if usable else []


def short_label(label: str) -> str:
    """``pipeline/20261201-060045`` -> ``12-01 06:00:45 · pipeline``: the part that tells runs of
    one study apart comes first, so a cut-off chip still shows it."""
    study, _, stamp = label.rpartition("/")
    match = re.fullmatch(r"\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(.*)", stamp)
    if not match:
        return label
    month, day, hour, minute, second, rest = match.groups()
    return f"{month}-{day} {hour}:{minute}:{second}{rest} · {study or '.'}"


def say_unknown_link_runs() -> None:
    """An error naming the runs of the link (``?run=``) that do not exist, until runs are
    picked: a link to a deleted or mistyped run must not silently show another run."""
    unknown = st.session_state.get(UNKNOWN_LINK_KEY) or []
    if unknown and st.session_state.get(SELECTED_KEY) == st.session_state.get(LINK_SELECTION_KEY):
        names = ", ".join(code(label) for label in unknown)  # from the URL: shown literally
        st.error(
            f"The link names {len(unknown)} run(s) that are not under this runs directory: "
            f"{names}. Pick runs in the sidebar (**Runs to show**).",
            icon=":material/link_off:",
        )


def selected_runs() -> list[RunInfo]:
    """The runs chosen in the sidebar (set by ``app.py`` before a page runs)."""
    return list(st.session_state.get("_selected_infos", []))


# --------------------------------------------------------------------------- tables


def gather(
    runs: Sequence[RunInfo], names: Iterable[str], *, required: Iterable[str] = ()
) -> dict[str, pd.DataFrame]:
    """Tables ``names`` of every run, concatenated across runs (series labelled by run).

    A run that lacks one of the ``required`` tables gets a message saying why (its stage did not
    run, is still running, failed); an unreadable table gets an error message; neither stops the
    page. Tables that no run has are left out of the result.
    """
    required = set(required)
    labels = series_labels(runs)
    per_table: dict[str, dict[str, pd.DataFrame]] = {}
    for run in runs:
        for name in names:
            if name not in run.tables:
                if name in required:
                    st.info(
                        f"**{md(run.label)}** has no {code(name)} table: "
                        f"{md(run.table_note(name))}."
                    )
                continue
            try:
                per_table.setdefault(name, {})[labels[run.label]] = read_table(run, name)
            except RunError as exc:
                st.error(f"**{md(run.label)}**: {md(exc)}")
    return {name: combine_runs(frames) for name, frames in per_table.items() if frames}


def series_labels(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Short run labels for legends: the timestamp alone when all runs are of one study."""
    parents = {Path(run.label).parent for run in runs}
    names = [Path(run.label).name for run in runs]
    if len(parents) == 1 and len(set(names)) == len(names):
        return {run.label: Path(run.label).name for run in runs}
    return {run.label: run.label for run in runs}


def run_colors(runs: Sequence[RunInfo]) -> dict[str, str]:
    """One colour per series (``model``, or ``run · model`` with several runs) of the selected
    runs, the same on every page: built from the runs and what their studies compare, never from
    the table a page happens to draw."""
    labels = series_labels(runs)
    several = len(runs) > 1
    names = [
        f"{labels[run.label]} · {name}" if several else name
        for run in runs
        for name in run.compared
    ]
    return series_colors(names)


def need_runs() -> list[RunInfo]:
    """The selected runs, or a message and ``st.stop()`` when none is selected."""
    runs = selected_runs()
    if not runs:
        st.info("Choose one or more runs in the sidebar (**Runs to show**).")
        st.stop()
    return runs


def warn_unfinished(runs: Sequence[RunInfo], stage: str) -> None:
    """Say so when a run's ``stage`` did not finish: its tables (curves) are partial."""
    for run in runs:
        status = run.stages.get(stage)
        if status is not None and status != "done":
            st.warning(
                f"**{md(run.label)}** ({md(run.status)}): {md(run.stage_note(stage))}; its {stage} "
                "figures "
                "show only what was written before that, and `probe export` marks them partial.",
                icon=":material/warning:",
            )


def group_page(key: str, runs: Sequence[RunInfo]) -> dict[str, pd.DataFrame]:
    """Page header and the tables of figure group ``key``; stops the page when there are none."""
    group = _GROUPS[key]
    tables = gather(runs, group.all_tables, required=group.tables)
    if not all(name in tables for name in group.tables):
        st.stop()  # gather() has said, run by run, why the table is missing or unreadable
    return tables


@st.cache_data(show_spinner="Drawing figures…", max_entries=32)
def _build(key: str, tables: dict[str, pd.DataFrame], options: dict) -> dict[str, go.Figure]:
    # Cached on the tables' content: widget changes elsewhere on a page do not redraw figures.
    return build_figures(tables, "screen", groups=[key], **options)


def figures_of(key: str, tables: dict[str, pd.DataFrame], **options: object) -> dict:
    """The registry's figures of group ``key`` (screen style), or an error message.

    Series keep the colours of :func:`run_colors` for the selected runs.
    """
    options.setdefault("colors", run_colors(selected_runs()))
    try:
        return _build(key, tables, options)
    except Exception as exc:  # a figure builder failing must not take the whole page down
        st.error(f"Could not draw the {key} figures: {type(exc).__name__}: {md(exc)}")
        with st.expander("traceback"):
            st.code(traceback.format_exc())
        return {}


# --------------------------------------------------------------------------- downloads


@functools.lru_cache(maxsize=64)
def _static_image(figure_json: str, fmt: str) -> bytes:
    """PNG/SVG bytes of a figure at its export size (kaleido + Chromium), cached on its JSON."""
    import plotly.io as pio

    return static_image(pio.from_json(figure_json), fmt, scale=2.0)


def _deferred(figure: go.Figure, fmt: str) -> Callable[[], bytes | str]:
    """Bytes of ``figure`` in ``fmt``, computed only when the button is clicked."""
    if fmt == "html":
        # Self-contained (plotly.js inlined) so the file opens offline.
        return lambda: figure.to_html(include_plotlyjs=True, full_html=True)
    figure_json = figure.to_json()

    def render() -> bytes | str:
        try:
            return _static_image(figure_json, fmt)
        except Exception as exc:  # no Chromium: say so in the file rather than crash a thread
            return f"static export failed: {exc}. Install Chromium (apt-get install chromium)."

    return render


def show_figures(figures: dict[str, go.Figure], *, key: str, per_row: int = 1) -> None:
    """Each figure with HTML/PNG/SVG download buttons (images rendered only on click).

    ``per_row`` > 1 lays small figures (heat maps) side by side.
    """
    items = list(figures.items())
    for start in range(0, len(items), per_row):
        cells = st.columns(per_row) if per_row > 1 else [st.container()]
        for cell, (name, figure) in zip(cells, items[start : start + per_row], strict=False):
            with cell:
                _show_figure(name, figure, key, wide=per_row == 1)


def _show_figure(name: str, figure: go.Figure, key: str, *, wide: bool) -> None:
    st.plotly_chart(figure, theme=None, key=f"{key}-{name}", width="stretch")
    columns = st.columns([1, 1, 1, 6] if wide else [1, 1, 1, 1])
    for column, fmt in zip(columns, ("html", "png", "svg"), strict=False):
        column.download_button(
            fmt.upper(),
            data=_deferred(figure, fmt),
            file_name=f"{name}.{fmt}",
            mime=_MIME[fmt],
            key=f"{key}-{name}-{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )


def table_download(frame: pd.DataFrame, name: str, *, key: str, label: str | None = None) -> None:
    """A CSV download button for ``frame`` (written only on click)."""
    st.download_button(
        label or f"{name}.csv",
        data=lambda: frame.to_csv(index=False),
        file_name=f"{name}.csv",
        mime=_MIME["csv"],
        key=f"{key}-csv",
        on_click="ignore",
        icon=":material/table:",
    )


def options_of(frame: pd.DataFrame, column: str) -> list[str]:
    """Distinct non-missing values of ``column`` in first-seen order."""
    if column not in frame:
        return []
    return [str(v) for v in dict.fromkeys(frame[column].dropna().tolist())]
