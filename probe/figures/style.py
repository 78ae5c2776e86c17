"""One house style for every figure: fonts, widths, and colour-blind-safe colours.

Figure builders call :func:`apply_style` last. ``style="screen"`` is for HTML and the dashboard;
``style="paper"`` gives a figure its printed size: single (3.5 in) or double (7.16 in) column of
a two-column paper, 9 pt serif text (8 pt ticks and legend, 10 pt title) *at that size*.

Plotly lays figures out in CSS pixels (96 px per inch) and static export keeps that ratio: a PDF
page is ``0.75 pt`` per pixel, an SVG is written in points, a PNG at ``96 * scale`` dpi (see
:mod:`probe.figures.export`). So a paper figure is ``3.5 * 96 = 336`` px wide and its 9 pt text
is ``12`` px: :func:`pt` converts.

Colours: one colour per *series* (a model, a run · model) for a whole page or export, chosen by
:func:`series_colors` from the series names, so the same series keeps its colour in every figure
whatever subset of series a figure shows. The first eight are Okabe & Ito's; then Paul Tol's
muted scheme; beyond that evenly spaced hues: a colour never repeats.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Mapping
from typing import Literal

import plotly.graph_objects as go

__all__ = [
    "PALETTE",
    "PAPER_FONT_PT",
    "PAPER_WIDTH_IN",
    "PX_PER_IN",
    "apply_style",
    "color_for",
    "mark_partial",
    "pt",
    "series_colors",
    "wrap_label",
]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
)  # fmt: skip
# Paul Tol's "muted" scheme (without its grey), also colour-blind safe: series 9..17.
_MORE = ("#332288", "#88CCEE", "#117733", "#999933", "#CC6677", "#882255", "#44AA99", "#DDCC77",
         "#AA4499")  # fmt: skip

PX_PER_IN = 96  # CSS pixels per inch: plotly's unit, and kaleido's for PDF/SVG pages
PAPER_WIDTH_IN = {"single": 3.5, "double": 7.16}
PAPER_FONT_PT = 9  # body text of the figure at its printed size
_PAPER_SMALL_PT = 8  # tick labels, legend, colour bar
_PAPER_TITLE_PT = 10


def pt(points: float) -> float:
    """CSS pixels of a length given in points (1 pt = 1/72 in)."""
    return points * PX_PER_IN / 72


# Series colours in order: Okabe-Ito's yellow (#F0E442) is too pale for a line on white, so it
# comes after the other sixteen rather than as the seventh series.
_SERIES = (*(c for c in PALETTE if c != "#F0E442"), *_MORE, "#F0E442")


def color_for(index: int) -> str:
    """The colour of series ``index``; distinct for every index (no cycling)."""
    if index < len(_SERIES):
        return _SERIES[index]
    # Golden-angle hues at two lightness levels: far apart for any number of series.
    k = index - len(_SERIES)
    hue = (0.11 + k * 0.381966) % 1.0
    red, green, blue = colorsys.hls_to_rgb(hue, 0.42 if k % 2 else 0.6, 0.65)
    return f"#{round(red * 255):02X}{round(green * 255):02X}{round(blue * 255):02X}"


def wrap_label(label: object, width: int = 22) -> str:
    """``run · model`` on two lines when long: panel titles of several runs side by side would
    otherwise run into each other."""
    text = str(label)
    return text.replace(" · ", "<br>", 1) if len(text) > width else text


def series_colors(
    names: Iterable[object], colors: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One colour per series name: ``colors`` where given, else the next unused palette colour.

    Builders call this with every series of the *whole* table (not of one panel), so a series
    keeps its colour across panels and figures; the dashboard passes ``colors`` built from the
    selected runs, so it also keeps it across pages.

    >>> series_colors(["a", "b"], {"b": "#000000"})
    {'a': '#0072B2', 'b': '#000000'}
    """
    given = dict(colors or {})
    used = set(given.values())
    out: dict[str, str] = {}
    index = 0
    for name in dict.fromkeys(str(n) for n in names):
        if name in given:
            out[name] = given[name]
            continue
        while color_for(index) in used:
            index += 1
        out[name] = color_for(index)
        used.add(out[name])
    return out


_SCREEN_LEGEND_ROWS = 10  # legend entries a screen figure keeps beside the plot


def _legend_entries(fig: go.Figure) -> int:
    """Entries the legend shows: named traces not hidden from it, one per legend group."""
    groups: set[str] = set()
    count = 0
    for trace in fig.data:
        if trace.showlegend is False or not trace.name:
            continue
        if trace.legendgroup:
            if trace.legendgroup in groups:
                continue
            groups.add(trace.legendgroup)
        count += 1
    return count


def apply_style(
    fig: go.Figure,
    *,
    style: Literal["screen", "paper"] = "screen",
    column: Literal["single", "double"] = "single",
    height: int | None = None,
) -> go.Figure:
    """Apply the house style in place and return the figure.

    ``height`` is in pixels; a paper figure without one is 0.7 times as tall as wide.
    """
    paper = style == "paper"
    body, small = (pt(PAPER_FONT_PT), pt(_PAPER_SMALL_PT)) if paper else (13, 12)
    fig.update_layout(
        template="simple_white",
        colorway=list(PALETTE),
        font={
            "family": "Times New Roman, Times, serif" if paper else "Inter, Arial, sans-serif",
            "size": body,
        },
        legend={"font": {"size": small}},
        margin={"l": 50, "r": 10, "t": 30 if paper else 50, "b": 40},
    )
    if paper:
        width = round(PAPER_WIDTH_IN[column] * PX_PER_IN)  # kaleido pages are whole pixels
        fig.update_layout(
            width=width,
            height=height or round(width * 0.7),
            # Builders set screen-sized titles and subplot labels explicitly; reset them to the
            # paper sizes or they overlap the plot area of a figure a third as wide.
            title={"font": {"size": pt(_PAPER_TITLE_PT)}, "y": 0.995, "yanchor": "top"},
            margin={"t": 45 if fig.layout.title.text else 30},
        )
        if fig.layout.legend.orientation is None:
            # Below the plot, not beside it: a single column has no width to spare.
            fig.update_layout(
                legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.3, "yanchor": "top"}
            )
        if fig.layout.title.subtitle.text:
            fig.update_layout(title_subtitle_font_size=small)
        fig.update_annotations(font_size=body)
        fig.update_xaxes(title_font_size=body, tickfont_size=small)
        fig.update_yaxes(title_font_size=body, tickfont_size=small)
        fig.update_scenes(
            xaxis={"title_font_size": body, "tickfont_size": small},
            yaxis={"title_font_size": body, "tickfont_size": small},
            zaxis={"title_font_size": body, "tickfont_size": small},
        )
        fig.update_coloraxes(colorbar_title_font_size=small, colorbar_tickfont_size=small)
        for trace in fig.data:  # heat maps and contours without a shared colour axis
            if hasattr(trace, "colorbar"):
                trace.colorbar.update(title_font_size=small, tickfont_size=small)
    else:
        if height:
            fig.update_layout(height=height)
        entries = _legend_entries(fig)
        if fig.layout.legend.orientation is None and entries > _SCREEN_LEGEND_ROWS:
            # A legend beside the plot holds about a dozen entries at the default height;
            # more would scroll and hide some (fifteen fine-tuning arms): put it below, in rows.
            fig.update_layout(
                legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top"},
                height=(height or 450) + 25 * math.ceil(entries / 5),
            )
    fig.update_xaxes(showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee")
    return fig


def mark_partial(fig: go.Figure, note: str) -> go.Figure:
    """Stamp ``fig`` as drawn from an unfinished stage (a stopped run's partial curves), in its
    subtitle, so an exported file cannot pass for a finished result."""
    title = fig.layout.title
    old = title.subtitle.text if title.subtitle and title.subtitle.text else ""
    text = f"PARTIAL: {note}" + (f" · {old}" if old else "")
    fig.update_layout(title={"subtitle": {"text": text, "font": {"color": "#B00020"}}})
    if fig.layout.margin.t is not None and fig.layout.margin.t < 60:
        fig.update_layout(margin={"t": 60})
    return fig
