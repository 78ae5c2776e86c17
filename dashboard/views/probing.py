"""Probe curves: accuracy by layer with 95% CI, control task and selectivity (``probe`` table)."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Layer-wise probe curves")
runs = shared.need_runs()
tables = shared.group_page("probe", runs)
probe = tables["probe"]

splits = [s for s in ("test", "dev") if s in shared.options_of(probe, "split")]
tasks = shared.options_of(probe, "task")
columns = st.columns([1, 3])
split = columns[0].radio("Split", splits or ["test"], horizontal=True, key="probe_split")
chosen = columns[1].multiselect("Tasks", tasks, default=tasks, key="probe_tasks")
st.caption(
    "Solid: probe on the task; dotted: the same probe on the control task (Hewitt & Liang 2019); "
    "band: 95% bootstrap CI over test sentences; bars: selectivity = task - control accuracy."
)

figures = shared.figures_of("probe", {"probe": probe[probe["task"].isin(chosen)]}, split=split)
shared.show_figures(figures, key="probe")

with st.expander("Numbers by layer (mean over seeds)"):
    linear = probe[
        (probe["probe"] == "linear") & (probe["split"] == split) & probe["task"].isin(chosen)
    ]
    wide = (
        linear.assign(series=linear["control"].astype("string") + " " + linear["metric"])
        .pivot_table(
            index=["model", "task", "layer"], columns="series", values="value", aggfunc="mean"
        )
        .reset_index()
    )
    st.dataframe(wide, hide_index=True)
shared.table_download(probe, "probe", key="probe")
