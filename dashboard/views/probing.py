"""Probe curves: score by layer with 95% CI, control task and selectivity (``probe`` table)."""

from __future__ import annotations

import shared
import streamlit as st

from probe.figures.probing import METRIC_NAMES, probe_metrics

st.title("Layer-wise probe curves")
runs = shared.need_runs()
shared.warn_unfinished(runs, "probe")
tables = shared.group_page("probe", runs)
probe = tables["probe"]

splits = [s for s in ("test", "dev") if s in shared.options_of(probe, "split")]
tasks = shared.options_of(probe, "task")
HEADLINE = "headline"
metrics = [HEADLINE, *probe_metrics(probe)]
columns = st.columns([1, 2, 3])
split = columns[0].radio(
    "Split", splits or ["test"], horizontal=True, key="probe_split", format_func=shared.md
)
metric = columns[1].selectbox(
    "Metric",
    metrics,
    format_func=lambda m: "headline (per task)" if m == HEADLINE else METRIC_NAMES.get(m, m),
    key="probe_metric",
    help="Headline: what papers report for each task (official SemEval-2010 F1 for relations, "
    "macro-F1 for entity types, accuracy otherwise). A task without the chosen metric keeps its "
    "headline one.",
)
chosen = columns[2].multiselect("Tasks", tasks, default=tasks, key="probe_tasks")
if not chosen:
    st.info("No task chosen: pick one or more in **Tasks** above.")
    st.stop()

shown = probe[probe["task"].isin(chosen)]
has_band = bool(
    (shown["split"] == split).any()
    and "ci_low" in shown
    and shown.loc[shown["split"] == split, "ci_low"].notna().any()
)
band = (
    "band: 95% bootstrap CI over sentences; "
    if has_band
    else f"no CI band: the {split} split has no bootstrap CI (only test has one); "
)
st.caption(
    "Solid: probe on the task; dotted: the same probe on the control task (Hewitt & Liang 2019, "
    f"drawn with accuracy only); {band}bars: selectivity = task - control accuracy."
)

figures = shared.figures_of(
    "probe", {"probe": shown}, split=split, metric=None if metric == HEADLINE else metric
)
shared.show_figures(figures, key="probe")

with st.expander("Numbers by layer (%, mean over seeds)"):
    linear = shown[(shown["probe"] == "linear") & (shown["split"] == split)]
    linear = linear[linear["metric"] != "C"]
    values = ["value", *(c for c in ("ci_low", "ci_high") if c in linear)]
    long = linear.groupby(["model", "task", "layer", "control", "metric"], dropna=False)[
        values
    ].mean()
    long = (100 * long).reset_index()
    long["series"] = long["control"].astype("string") + " " + long["metric"].astype("string")
    wide = long.pivot_table(
        index=["model", "task", "layer"], columns="series", values=values, aggfunc="mean"
    )
    # Columns "task accuracy", "task accuracy 95% low/high", ...: CI next to its value.
    wide.columns = [
        series if value == "value" else f"{series} 95% {value.removeprefix('ci_')}"
        for value, series in wide.columns
    ]
    wide = wide.dropna(axis=1, how="all")
    wide = wide[sorted(wide.columns, key=lambda c: (c.split(" 95% ")[0], " 95% " in c, c))]
    st.dataframe(
        wide.reset_index(),
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(column, format="%.1f") for column in wide.columns
        },
    )
shared.table_download(probe, "probe", key="probe")
