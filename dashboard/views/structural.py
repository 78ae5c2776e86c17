"""Structural probes: UUAS, DSpr., root accuracy and NSpr. by layer, one worked tree."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Structural probes")
runs = shared.need_runs()
tables = shared.group_page("structural", runs)
structural = tables["structural"]
split = st.radio("Split", ["test", "dev"], horizontal=True, key="structural_split")
st.caption(
    "Hewitt & Manning (2019): a rank-k linear map under which squared distances between word "
    "vectors match tree distances (UUAS, DSpr.) and squared norms match depths (root accuracy, "
    "NSpr.). Punctuation (the reference's PTB tags) is left out of UUAS and root accuracy; the "
    "dashed line links every word to the next. The tree is drawn at each model's best layer."
)
shared.show_figures(shared.figures_of("structural", tables, split=split), key="structural")
scores = structural[(structural["split"] == split) & (structural["metric"] != "epochs")]
if not scores.empty:
    st.subheader("By layer")
    # groupby(dropna=False) keeps the linear baseline (no model, no layer) without the
    # cartesian product of index levels that pivot_table(dropna=False) would add
    wide = (
        scores.groupby(["model", "task", "probe", "layer", "metric"], dropna=False, sort=False)
        .value.mean()
        .unstack("metric")
        .reset_index()
    )
    st.dataframe(wide, hide_index=True)
shared.table_download(structural, "structural", key="structural")
