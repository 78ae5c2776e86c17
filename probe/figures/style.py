"""One house style for every figure: fonts, widths, and a colour-blind-safe palette.

Figure builders call :func:`apply_style` last. ``style="screen"`` is for HTML and the dashboard;
``style="paper"`` sets sizes for single (3.5 in) and double (7.16 in) columns of a two-column
paper at 300 dpi-equivalent, with serif fonts that match LaTeX body text.
"""

from __future__ import annotations

from typing import Literal

import plotly.graph_objects as go

__all__ = ["PALETTE", "apply_style", "color_for"]

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
)  # fmt: skip

# Widths in CSS pixels at 96 px/in; export multiplies by `scale` for resolution.
_PAPER_WIDTH = {"single": 336, "double": 687}


def color_for(index: int) -> str:
    """The palette colour for series ``index`` (cycles)."""
    return PALETTE[index % len(PALETTE)]


def apply_style(
    fig: go.Figure,
    *,
    style: Literal["screen", "paper"] = "screen",
    column: Literal["single", "double"] = "single",
    height: int | None = None,
) -> go.Figure:
    """Apply the house style in place and return the figure."""
    paper = style == "paper"
    fig.update_layout(
        template="simple_white",
        colorway=list(PALETTE),
        font={
            "family": "Times New Roman, Times, serif" if paper else "Inter, Arial, sans-serif",
            "size": 9 if paper else 13,
        },
        legend={"font": {"size": 8 if paper else 12}},
        margin={"l": 50, "r": 10, "t": 30 if paper else 50, "b": 40},
    )
    if paper:
        fig.update_layout(
            width=_PAPER_WIDTH[column],
            height=height or int(_PAPER_WIDTH[column] * 0.7),
            # Builders set screen-sized titles and subplot labels explicitly; a paper figure is
            # a third as wide, so shrink them too or they overlap the plot area.
            title={"font": {"size": 10}, "y": 0.995, "yanchor": "top"},
            margin={"t": 40 if fig.layout.title.text else 30},
        )
        fig.update_annotations(font_size=9)
        fig.update_xaxes(title_font_size=9, tickfont_size=8)
        fig.update_yaxes(title_font_size=9, tickfont_size=8)
        fig.update_coloraxes(colorbar_title_font_size=8, colorbar_tickfont_size=8)
    elif height:
        fig.update_layout(height=height)
    fig.update_xaxes(showgrid=True, gridcolor="#eeeeee")
    fig.update_yaxes(showgrid=True, gridcolor="#eeeeee")
    return fig
