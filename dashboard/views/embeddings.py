"""Sentence embeddings: STS correlation per pooling x whitening, per layer, and isotropy."""

from __future__ import annotations

import shared
import streamlit as st

st.title("Sentence embeddings and whitening")
runs = shared.need_runs()
shared.warn_unfinished(runs, "embeddings")
tables = shared.group_page("embeddings", runs)
table = tables["embeddings"]
st.caption(
    "Correlation x 100 of the cosine similarity of sentence vectors with gold STS scores, for "
    "each pooling (columns) and whitening variant (rows; Su et al. 2021), one panel per model on "
    "one colour scale zoomed to the scores; isotropy of the vectors before and after. The "
    "selectors choose what the figures and the table show."
)

scores = table[table["metric"].isin(["spearman", "pearson"])]
task = split = None
metric = "spearman"
if not scores.empty:
    columns = st.columns(3)
    task = columns[0].selectbox("Task", shared.options_of(scores, "task"), key="emb_task")
    splits = shared.options_of(scores[scores["task"] == task], "split")
    split = columns[1].selectbox(
        "Split", splits, index=splits.index("test") if "test" in splits else 0, key="emb_split"
    )
    metric = columns[2].selectbox("Metric", shared.options_of(scores, "metric"), key="emb_metric")
figures = shared.figures_of("embeddings", tables, task=task, split=split, sts_metric=metric)
shared.show_figures(figures, key="embeddings")

if not scores.empty:
    st.subheader("Table")
    part = scores[
        (scores["task"] == task) & (scores["split"] == split) & (scores["metric"] == metric)
    ]
    fit_on = part["fit_on"].astype("string") if "fit_on" in part else None
    variant = part["whitening"].astype("string")
    if fit_on is not None and fit_on.dropna().nunique() > 1:
        variant = variant.where(fit_on.isna(), variant + " (" + fit_on.fillna("") + ")")
    wide = part.assign(pooling=part["pooling_spec"], whitening=variant).pivot_table(
        index=["pooling", "whitening"], columns="model", values="value", aggfunc="mean", sort=False
    )
    st.dataframe(wide.style.format("{:.2f}"))
shared.table_download(table, "embeddings", key="embeddings")
