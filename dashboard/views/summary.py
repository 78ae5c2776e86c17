"""Cross-task summary: center of gravity, expected layer, scalar-mix weights (``probe_summary``)."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Cross-task summary")
runs = shared.need_runs()
tables = shared.group_page("summary", runs)
summary = tables["probe_summary"]
st.caption(
    "Tenney et al. (2019): bars are the gain of the cumulative mix-k probe at each layer; "
    "◆ center of gravity of those gains, ◇ expected layer of the scalar-mix weights. Tasks are "
    "sorted by center of gravity."
)
figures = shared.figures_of("summary", tables)
shared.show_figures({k: v for k, v in figures.items() if k == "pipeline"}, key="summary")
shared.show_figures({k: v for k, v in figures.items() if k != "pipeline"}, key="summary", per_row=2)

scalar = summary[summary["metric"].isin(["center_of_gravity", "expected_layer"])]
if not scalar.empty:
    st.subheader("Per task")
    wide = scalar.pivot_table(
        index=["model", "task"], columns="metric", values="value", aggfunc="mean"
    ).reset_index()
    st.dataframe(wide.sort_values(["model", "center_of_gravity"]), hide_index=True)
shared.table_download(summary, "probe_summary", key="summary")
