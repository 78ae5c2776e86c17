"""Attention heads: entropy, weight on [CLS]/[SEP]/punctuation, dependency heads (``attention``)."""

from __future__ import annotations

import shared
import streamlit as st

from probe.similarity.summary import best_heads, mostly_shares

st.title("Attention heads")
runs = shared.need_runs()
tables = shared.group_page("attention", runs)
attention = tables["attention"]
st.caption(
    "Clark et al. (2019): per head, the entropy of its attention, its weight on [CLS], [SEP] and "
    "punctuation, and how often a word's most-attended other word is its dependency head (UD), "
    "against the best fixed-offset baseline (the head is k words away, k in -3..3)."
)
shared.show_figures(shared.figures_of("attention", tables), key="attention")

st.subheader("Best head per relation")
best = best_heads(attention)
st.dataframe(
    best.assign(
        accuracy=100 * best["accuracy"], offset_accuracy=100 * best["offset_accuracy"]
    ).sort_values(["model", "n"], ascending=[True, False]),
    hide_index=True,
)
st.subheader("Share of heads with more than half their attention on")
st.dataframe(mostly_shares(attention), hide_index=True)
shared.table_download(attention, "attention", key="attention")
