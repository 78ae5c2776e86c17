"""Cross-task summary: center of gravity, expected layer, scalar-mix weights (``probe_summary``)."""

from __future__ import annotations

import pandas as pd
import shared
import streamlit as st

from probe.figures.pipeline import task_order
from probe.probes.summary_rules import MIN_COG_GAIN_POINTS, center_of_gravity_is_meaningful

st.title("Cross-task summary")
runs = shared.need_runs()
shared.warn_unfinished(runs, "probe")
tables = shared.group_page("summary", runs)
summary = tables["probe_summary"]
st.caption(
    "Tenney et al. (2019): bars are the gain of the cumulative mix-k probe at each layer; "
    "◆ center of gravity of those gains, ◇ expected layer of the scalar-mix weights. Tasks are "
    "in one order everywhere (center of gravity of the first model), and the scalar-mix heat "
    "maps share one colour scale."
)
figures = shared.figures_of("summary", tables)
shared.show_figures({k: v for k, v in figures.items() if k == "pipeline"}, key="summary")
shared.show_figures({k: v for k, v in figures.items() if k != "pipeline"}, key="summary", per_row=2)

scalar = summary[summary["metric"].isin(["center_of_gravity", "expected_layer"])]
if not scalar.empty:
    st.subheader("Per task")
    wide = scalar.pivot_table(
        index=["model", "task"], columns="metric", values="value", aggfunc="mean"
    )
    deltas = summary[summary["metric"] == "delta"]
    gain = (
        100
        * deltas.groupby(["model", "task", "layer"])["value"]
        .mean()
        .groupby(["model", "task"])
        .sum()
    )
    wide["gain (points)"] = gain.reindex(wide.index)
    meaningful = center_of_gravity_is_meaningful(wide["gain (points)"].fillna(0.0) / 100)
    # A center of gravity the run calls not meaningful is not a number to quote: blank it and
    # say why in its own column rather than print e.g. 7.42 for a 0..6-layer model.
    wide["center of gravity"] = wide["center_of_gravity"].where(meaningful)
    wide["note"] = pd.Series("", index=wide.index).where(
        meaningful,
        f"center of gravity not meaningful: layers 1..L gain < {MIN_COG_GAIN_POINTS:g} point",
    )
    wide = wide.rename(columns={"expected_layer": "expected layer"}).reset_index()
    order = {task: i for i, task in enumerate(task_order(summary))}
    wide = wide.sort_values(
        ["model", "task"], key=lambda column: column.map(order) if column.name == "task" else column
    )
    st.dataframe(
        wide[["model", "task", "center of gravity", "expected layer", "gain (points)", "note"]],
        hide_index=True,
        column_config={
            "center of gravity": st.column_config.NumberColumn(format="%.2f"),
            "expected layer": st.column_config.NumberColumn(format="%.2f"),
            "gain (points)": st.column_config.NumberColumn(format="%.1f"),
            "note": st.column_config.TextColumn(width="large"),
        },
    )
shared.table_download(summary, "probe_summary", key="summary")
