"""Pretraining ablations: arms of pretraining jobs, each over several seeds, against a baseline."""

from __future__ import annotations

import shared
import streamlit as st

from probe.figures.ablations import ablation_arms, ablation_table, final_metrics

st.title("Pretraining ablations")
runs = shared.need_runs()
tables = shared.group_page("ablations", runs)
training = tables["training"]
arms = ablation_arms(training)
if not arms:
    st.info(
        "No ablation in the selected runs: this page compares pretraining jobs grouped by their "
        "`arm` setting (two or more arms, at least one with two seeds), as in "
        "studies/pretraining_ablations.yaml."
    )
    st.stop()

shared.show_figures(shared.figures_of("ablations", tables), key="ablations")

final = final_metrics(training, tables.get("probe"))
baseline = st.selectbox("Baseline arm", arms, index=0, key="ablation_baseline")
summary = ablation_table(final, baseline=baseline)
st.subheader("Final metrics: mean and spread over seeds")
st.caption(
    "beyond_spread: the seed ranges [min, max] of the arm and of the baseline do not overlap. "
    "gap: held-out minus train-sample MLM loss (same masking rule on both). A job still "
    "training shows its latest evaluation: check the steps column of the per-job table."
)
st.dataframe(summary, hide_index=True, use_container_width=True)
st.subheader("Per job")
st.dataframe(final, hide_index=True, use_container_width=True)
shared.table_download(final, "ablation_final_metrics", key="ablations")
