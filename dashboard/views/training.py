"""Training: loss and dev-metric curves of every job, pretrained vs scratch overlays."""

from __future__ import annotations

import shared
import streamlit as st

from probe.figures.training import loss_curves, task_name

st.title("Training curves")
runs = shared.need_runs()
shared.warn_unfinished(runs, "train")
tables = shared.group_page("training", runs)
training = tables["training"]
tasks = [task_name(t) for t in shared.options_of(training, "task")]
st.caption(
    f"{', '.join(tasks)}. Train curves are smoothed (raw values faint behind); dashed lines are "
    "references: the unigram entropy of the corpus for MLM loss, the majority label (chance) for "
    "accuracies, which are drawn on a range of at least 20 points around it."
)

window = st.number_input(
    "Smoothing window of train curves (steps; 0 = about 1/50 of the steps)",
    min_value=0,
    max_value=10_000,
    value=0,
    step=1,
    key="train_smooth",
)
smooth = int(window) or None
shared.show_figures(shared.figures_of("training", tables, smooth=smooth), key="training")

st.subheader("Overlay one curve")
curves = training[training["step"].notna()][["split", "metric"]].drop_duplicates()
choices = [f"{row.split} {row.metric}" for row in curves.itertuples()]
if choices:
    columns = st.columns([2, 3])
    which = columns[0].selectbox(
        "Curve",
        choices,
        index=choices.index("train loss") if "train loss" in choices else 0,
        format_func=lambda c: c.replace("_", " "),
        key="train_curve",
    )
    models = shared.options_of(training, "model")
    picked = columns[1].multiselect("Jobs", models, default=models, key="train_jobs")
    split, metric = which.split(" ", 1)
    try:
        figure = loss_curves(
            training,
            metric=metric,
            split=split,
            models=picked or None,
            smooth=smooth or 1,
            colors=shared.run_colors(runs),
        )
    except Exception as exc:  # keep the page alive on an odd table
        st.error(f"Could not draw {shared.md(which)}: {type(exc).__name__}: {shared.md(exc)}")
    else:
        shared.show_figures({f"training_{split}_{metric}": figure}, key="train_overlay")
shared.table_download(training, "training", key="training")
