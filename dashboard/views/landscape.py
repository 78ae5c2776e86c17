"""Loss landscapes: checkpoint curves, 1-D line, 2-D contours, 3-D surfaces, sharpness."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Loss landscapes")
runs = shared.need_runs()
shared.warn_unfinished(runs, "landscape")
tables = shared.group_page("landscape", runs)
st.caption(
    "Loss around the fine-tuned weights (Li et al. 2018; Hao et al. 2019): along the line from the "
    "initial to the final weights, in a random filter-normalised plane and in the PCA plane of the "
    "training trajectory (drawn in white), with sharpness numbers."
)
for name in ("landscape_1d", "landscape_2d", "sharpness"):
    if name not in tables:
        st.info(f"No `{name}` table in the selected runs: the study did not ask for it.")

figures = shared.figures_of("landscape", tables)
kinds = {
    "Curves and line": [n for n in figures if n in ("landscape_curves", "landscape_1d")],
    "Contours": [n for n in figures if n.startswith("landscape_2d")],
    "3-D": [n for n in figures if n.startswith("landscape_3d")],
    "Sharpness": [n for n in figures if n == "landscape_sharpness"],
}
# One section drawn at a time: st.tabs would render every tab's figures (both 3-D scenes
# included) on every rerun even while hidden, which took 6-11 s before the first chart showed.
section = st.segmented_control(
    "Show", list(kinds), default="Curves and line", key="landscape_section"
)
section = section or "Curves and line"  # clicking the chosen segment again unselects it
names = kinds[section]
if not names:
    st.info(f"No {section.lower()} figures in these tables.")
shared.show_figures({n: figures[n] for n in names}, key=f"landscape-{section}")

if "sharpness" in tables:
    st.subheader("Sharpness")
    sharp = tables["sharpness"]
    index = [c for c in ("model", "split", "radius") if c in sharp]
    # groupby(dropna=False) keeps rows without a radius (Hessian) or split (distance moved).
    wide = sharp.groupby([*index, "metric"], dropna=False)["value"].mean().unstack("metric")
    wide = wide.reset_index()
    st.dataframe(wide, hide_index=True)
for column, (name, table) in zip(st.columns(len(tables)), tables.items(), strict=True):
    with column:
        shared.table_download(table, name, key=f"landscape-{name}")
