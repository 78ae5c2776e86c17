"""Every dashboard page in headless Chromium with two runs selected.

Fails on an exception box, a legend, title, axis title or annotation drawn outside its figure,
a legend whose entries are cut off, and a series whose colour differs between figures or pages.
Screenshots of every page land in the test's temporary folder (and in ``$PROBE_SCREENSHOTS`` when
set) to be looked at. Skips without Chromium; one Streamlit server and one browser for all pages.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.test_dashboard import (
    CHROMIUM,
    FULL,
    OLDER,
    headless_chromium,
    make_fixture_runs,
    served_dashboard,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)

# url path -> (text the page shows when drawn, number of plotly figures it draws)
PAGES = {
    "": ("of 5 run folders", 0),
    "probing": ("Layer-wise probe curves", 2),
    "summary": ("Cross-task summary", 3),
    "training": ("Training curves", 3),
    "ablations": ("Pretraining ablations", 0),  # the fixture runs have no ablation arms
    "strategies": ("Fine-tuning strategies", 0),  # nor fine-tuning arms
    "embeddings": ("Sentence embeddings", 3),
    "landscape": ("Loss landscapes", 2),
    "details": ("Run details", 0),
}

# Boxes of a figure's parts that lie outside the figure (clipped), and legends whose entries
# overflow the legend's visible box (plotly then scrolls and cuts entries off).
_CLIPPED = """
(() => {
  const out = [];
  document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
    const svg = gd.querySelector('.main-svg');
    if (!svg) return;
    const root = svg.getBoundingClientRect();
    const title = (gd.layout && gd.layout.title && gd.layout.title.text) || `figure ${i}`;
    const parts = {'.legend': 'legend', '.g-gtitle': 'title', '.annotation': 'annotation',
                   '.g-xtitle': 'x title', '.g-ytitle': 'y title', '.colorbar': 'colour bar'};
    for (const [selector, what] of Object.entries(parts)) {
      gd.querySelectorAll(selector).forEach(el => {
        const b = el.getBoundingClientRect();
        if (b.width === 0 && b.height === 0) return;
        if (b.left < root.left - 2 || b.right > root.right + 2 ||
            b.top < root.top - 2 || b.bottom > root.bottom + 2)
          out.push(`${title}: ${what} [${[b.left, b.top, b.right, b.bottom].map(Math.round)}] ` +
                   `outside [${[root.left, root.top, root.right, root.bottom].map(Math.round)}]`);
      });
    }
    // Titles and annotations (subplot titles) must not run into each other.
    const texts = [...gd.querySelectorAll('.g-gtitle text, .annotation-text, .g-xtitle, .g-ytitle')]
      .map(el => [el, el.getBoundingClientRect()]).filter(([, b]) => b.width > 0);
    for (let a = 0; a < texts.length; a++) for (let b = a + 1; b < texts.length; b++) {
      const [p, q] = [texts[a][1], texts[b][1]];
      const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (w > 2 && h > 2)
        out.push(`${title}: "${texts[a][0].textContent}" overlaps "${texts[b][0].textContent}"`);
    }
    const bg = gd.querySelector('.legend .bg');
    if (bg) {
      const box = bg.getBoundingClientRect();
      gd.querySelectorAll('.legend .traces').forEach(entry => {
        const b = entry.getBoundingClientRect();
        if (b.bottom > box.bottom + 2 || b.right > box.right + 2)
          out.push(`${title}: legend entry ${entry.textContent} cut off`);
      });
    }
  });
  return out;
})()
"""
# Series name -> colours it is drawn in, over every figure of the page.
_COLOURS = """
(() => {
  const out = {};
  document.querySelectorAll('.js-plotly-plot').forEach(gd => (gd.data || []).forEach(t => {
    const name = t.legendgroup || t.name;
    let colour = (t.line && t.line.color) || (t.marker && t.marker.color);
    if (!name || typeof colour !== 'string' || !colour.startsWith('#') || colour === '#888888')
      return;
    (out[name] = out[name] || []).includes(colour) || out[name].push(colour);
  }));
  return out;
})()
"""
_COUNT = "document.querySelectorAll('.js-plotly-plot .main-svg').length"


def _wait_drawn(browser, needle: str, figures: int, timeout: float = 60) -> None:
    browser.wait_for(f"document.body.innerText.includes({needle!r})", timeout=timeout)
    if figures:
        browser.wait_for(f"{_COUNT} >= {figures}", timeout=timeout)
    # Streamlit streams elements and greys out stale ones while it reruns: wait until none is
    # stale and the figure count stops changing.
    browser.wait_for("!document.querySelector('[data-stale=\"true\"]')", timeout=timeout)
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 1.5:
        count = browser.evaluate(_COUNT)
        if count != last:
            last, stable_since = count, time.monotonic()
        time.sleep(0.25)


def _check_page(browser, name: str, problems: list[str], colours: dict[str, set]) -> None:
    if browser.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length"):
        problems.append(f"{name}: exception box: " + browser.evaluate(
            "document.querySelector('[data-testid=\"stException\"]').innerText"
        )[:300])  # fmt: skip
    problems += [f"{name}: {p}" for p in browser.evaluate(_CLIPPED) or []]
    for series, found in (browser.evaluate(_COLOURS) or {}).items():
        colours.setdefault(series, set()).update(found)


def test_every_page_with_two_runs_draws_cleanly_in_a_browser(tmp_path: Path) -> None:
    runs_dir = make_fixture_runs(tmp_path / "runs")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    problems: list[str] = []
    colours: dict[str, set] = {}
    link = f"?run={FULL}&run={OLDER}"
    with (
        served_dashboard(runs_dir, tmp_path) as url,
        headless_chromium(tmp_path, width=1440, height=2200) as browser,
    ):
        for path, (needle, figures) in PAGES.items():
            start = time.monotonic()
            browser.call("Page.navigate", url=f"{url}/{path}{link}")
            _wait_drawn(browser, needle, figures)
            name = path or "runs"
            print(f"{name}: drawn in {time.monotonic() - start:.1f} s")
            (shots / f"{name}.png").write_bytes(browser.screenshot())
            _check_page(browser, name, problems, colours)
            # Both runs are shown, and the address bar still links to them.
            assert browser.evaluate("location.search").count("run=") == 2, name
            if path == "landscape":  # its other sections, each drawn when opened
                for section, count in (("Contours", 2), ("3-D", 2), ("Sharpness", 1)):
                    browser.evaluate(
                        "[...document.querySelectorAll('button')]"
                        f".find(b => b.innerText.trim() === {section!r}).click()"
                    )
                    time.sleep(0.5)
                    _wait_drawn(browser, needle, count)
                    name = f"landscape-{section}"
                    (shots / f"{name}.png").write_bytes(browser.screenshot())
                    _check_page(browser, name, problems, colours)
    if os.environ.get("PROBE_SCREENSHOTS"):
        shutil.copytree(shots, os.environ["PROBE_SCREENSHOTS"], dirs_exist_ok=True)
    changed = {series: found for series, found in colours.items() if len(found) > 1}
    assert not changed, f"series drawn in more than one colour: {changed}"
    assert not problems, "\n".join(problems)
    assert len(colours) >= 4  # the check saw the series of both runs
