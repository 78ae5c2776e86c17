"""MDL probes: online code length and compression by layer, task vs control (``mdl``)."""

from __future__ import annotations

import shared
import streamlit as st

st.title("MDL probes")
runs = shared.need_runs()
tables = shared.group_page("mdl", runs)
mdl = tables["mdl"]
st.caption(
    "Voita & Titov (2020): bits needed to transmit the training labels with the online code "
    "(first block uniform, each next block with the probe trained on all before it). Solid = "
    "task, dotted = control task (a random label per word type); lower code length and higher "
    "compression = the labels are easier to extract. Selectivity in bits = control - task."
)
shared.show_figures(shared.figures_of("mdl", tables), key="mdl")
per_layer = mdl[mdl["metric"].isin(["codelength", "compression", "selectivity_bits"])]
if not per_layer.empty:
    st.subheader("By layer")
    wide = per_layer.pivot_table(
        index=["model", "task", "control", "layer"], columns="metric", values="value"
    ).reset_index()
    st.dataframe(wide, hide_index=True)
shared.table_download(mdl, "mdl", key="mdl")
