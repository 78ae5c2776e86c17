"""Fine-tuning strategies: arms of fine-tuning jobs, each over seeds, per task."""

from __future__ import annotations

import shared
import streamlit as st

from probe.figures.strategies import strategy_arms, strategy_finals, strategy_table

st.title("Fine-tuning strategies")
runs = shared.need_runs()
tables = shared.group_page("strategies", runs)
training = tables["training"]
if not strategy_arms(training):
    st.info(
        "No strategy comparison in the selected runs: this page compares fine-tuning jobs "
        "grouped by their `arm` (two or more arms on one task), as in "
        "studies/finetune_strategies.yaml."
    )
    st.stop()

shared.show_figures(shared.figures_of("strategies", tables), key="strategies")

finals = strategy_finals(training)
st.subheader("Per arm: trainable parameters, dev metric over seeds, training seconds")
st.caption(
    "trainable_pct: trainable share of all parameters (added LoRA/adapter weights included). "
    "seconds: the training loop's time, evaluations and checkpoints not counted."
)
st.dataframe(strategy_table(finals), hide_index=True, use_container_width=True)
st.subheader("Per job")
st.dataframe(finals, hide_index=True, use_container_width=True)
shared.table_download(finals, "strategy_finals", key="strategies")
