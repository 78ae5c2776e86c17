"""Write plotly figures to disk at their real size: HTML plus static PNG/SVG/PDF through kaleido.

Size: a figure's ``layout.width``/``height`` (CSS pixels; :func:`figure_size`) is its size on
paper at 96 px per inch, in every format. ``plotly.io.write_images`` ignores the layout's size
(it falls back to 700 x 500 px for every figure of a batch), so the size is passed explicitly,
and only PNG is scaled (``scale`` times the pixels, recorded as ``96 * scale`` dpi): a scaled PDF
or SVG would be a larger *page*, not a sharper one. A paper single-column figure is therefore a
252 pt wide PDF page, an SVG ``width="252pt"``, a 1050 px PNG at 300 dpi: 3.5 in in each.

Static export needs a Chrome/Chromium binary (kaleido 1.x drives one); offline, kaleido cannot
download its own, so install the system package (``apt-get install chromium``). Without one the
HTML files are still written and the error names the fix.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from probe.figures.names import is_safe_name

__all__ = [
    "SCREEN_WIDTH",
    "STATIC_FORMATS",
    "StaticExportError",
    "figure_size",
    "static_image",
    "write_figures",
]

STATIC_FORMATS = ("png", "svg", "pdf")
#: Width (px) of a screen-style figure, which stretches to its container on a page and so has
#: none of its own: wide enough for a legend beside three panels.
SCREEN_WIDTH = 1100
_DEFAULT_HEIGHT = 500  # plotly's own default
_SVG_ROOT = re.compile(r'(<svg\b[^>]*?)\swidth="([\d.]+)"\s+height="([\d.]+)"')


class StaticExportError(RuntimeError):
    """Static export failed, usually because no Chromium is installed."""


def figure_size(figure: go.Figure) -> tuple[float, float]:
    """``(width, height)`` in CSS pixels: the layout's, else :data:`SCREEN_WIDTH` x 500."""
    layout = figure.layout
    return float(layout.width or SCREEN_WIDTH), float(layout.height or _DEFAULT_HEIGHT)


def _scale_for(fmt: str, scale: float) -> float:
    return scale if fmt == "png" else 1.0


def _finish(data: bytes, fmt: str, scale: float) -> bytes:
    """Record the physical size in the file: SVG width/height in points, PNG resolution in dpi."""
    if fmt == "svg":
        text = data.decode()

        def in_points(match: re.Match) -> str:
            width, height = float(match[2]) * 0.75, float(match[3]) * 0.75
            return f'{match[1]} width="{width:g}pt" height="{height:g}pt"'

        return _SVG_ROOT.sub(in_points, text, count=1).encode()
    if fmt == "png":
        from PIL import Image

        image = Image.open(io.BytesIO(data))
        out = io.BytesIO()
        dpi = 96 * scale
        image.save(out, format="PNG", dpi=(dpi, dpi))
        return out.getvalue()
    return data


def _kaleido_error(exc: Exception) -> StaticExportError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StaticExportError(
        f"static figure export failed ({reason}); install Chromium "
        "(`apt-get install chromium`) or export HTML only"
    )


def static_image(figure: go.Figure, fmt: str, *, scale: float = 2.0) -> bytes:
    """One figure as PNG/SVG/PDF bytes at its real size (see the module docstring)."""
    width, height = figure_size(figure)
    try:
        data = pio.to_image(
            figure, format=fmt, width=width, height=height, scale=_scale_for(fmt, scale)
        )
    except Exception as exc:  # kaleido raises several types when Chromium is missing
        raise _kaleido_error(exc) from exc
    return _finish(data, fmt, scale)


def write_figures(
    figures: dict[str, go.Figure],
    folder: str | Path,
    formats: Sequence[str] = ("html", "png"),
    *,
    scale: float = 2.0,
) -> list[Path]:
    """Write each ``name -> figure`` as ``folder/name.<format>``; returns the paths written.

    All static images go through one kaleido call (one browser start for the whole batch, which
    is ~3 s per start on a small machine). ``scale`` multiplies PNG pixels only.
    """
    unsafe = [name for name in figures if not is_safe_name(name)]
    if unsafe:  # builders name figures with figure_name(); anything else is a bug, not a path
        raise ValueError(f"figure names {unsafe} are not file-name slugs; use figure_name()")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "html" in formats:
        for name, figure in figures.items():
            path = folder / f"{name}.html"
            figure.write_html(
                path, include_plotlyjs="directory"
            )  # offline-viewable, one copy of plotly.js
            written.append(path)
    static = [(name, fmt) for fmt in formats if fmt in STATIC_FORMATS for name in figures]
    if static:
        paths = [folder / f"{name}.{fmt}" for name, fmt in static]
        sizes = [figure_size(figures[name]) for name, _ in static]
        try:
            pio.write_images(
                [figures[name] for name, _ in static],
                paths,
                format=[fmt for _, fmt in static],
                scale=[_scale_for(fmt, scale) for _, fmt in static],
                width=[w for w, _ in sizes],
                height=[h for _, h in sizes],
            )
        except Exception as exc:  # kaleido raises several types when Chromium is missing
            raise _kaleido_error(exc) from exc
        for path, (_, fmt) in zip(paths, static, strict=True):
            if fmt != "pdf":
                path.write_bytes(_finish(path.read_bytes(), fmt, scale))
        written.extend(paths)
    return written
