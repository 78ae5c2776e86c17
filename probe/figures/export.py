"""Write plotly figures to disk: interactive HTML plus static PNG/SVG/PDF through kaleido.

Static export needs a Chrome/Chromium binary (kaleido 1.x drives one); offline, kaleido cannot
download its own, so install the system package (``apt-get install chromium``). Without one the
HTML files are still written and the error names the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from probe.figures.names import is_safe_name

__all__ = ["StaticExportError", "write_figures"]

STATIC_FORMATS = ("png", "svg", "pdf")


class StaticExportError(RuntimeError):
    """Static export failed, usually because no Chromium is installed."""


def write_figures(
    figures: dict[str, go.Figure],
    folder: str | Path,
    formats: Sequence[str] = ("html", "png"),
    *,
    scale: float = 2.0,
) -> list[Path]:
    """Write each ``name -> figure`` as ``folder/name.<format>``; returns the paths written.

    All static images go through one kaleido call (one browser start for the whole batch, which
    is ~3 s per start on a small machine).
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
        try:
            pio.write_images(
                [figures[name] for name, _ in static],
                paths,
                scale=scale,
                format=[fmt for _, fmt in static],
            )
        except Exception as exc:  # kaleido raises several types when Chromium is missing
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StaticExportError(
                f"static figure export failed ({reason}); install Chromium "
                "(`apt-get install chromium`) or export HTML only"
            ) from exc
        written.extend(paths)
    return written
