"""Runs: every run folder under the runs directory, with filters."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import shared
import streamlit as st

from probe.stages import STAGE_NAMES

st.title("Runs")
runs_dir = st.session_state.get("_runs_dir", shared.DEFAULT_RUNS_DIR)
runs = st.session_state.get("_all_runs", [])

if not Path(runs_dir).is_dir():
    st.warning(
        f"The runs directory {shared.code(runs_dir)} does not exist. Choose another one in the "
        "sidebar, or start a run: `probe run studies/layerwise_pos.yaml`."
    )
    st.stop()
if not runs:
    st.info(
        f"No run folders under {shared.code(runs_dir)} yet (a run folder is "
        "`<study>/<timestamp>/` with a `manifest.json`). Start one with "
        "`probe run studies/layerwise_pos.yaml`."
    )
    st.stop()


def _age(timestamp: float) -> str:
    """How long ago the manifest was last written: tells a live run from a killed one."""
    seconds = time.time() - timestamp
    if not timestamp or seconds < 0:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _stages(run) -> str:
    """Planned stages and their state in one short cell: ``train ✓ · probe ✗ stopped``."""
    parts = []
    for stage in run.planned:
        status = run.stages.get(stage, "not started")
        parts.append(f"{stage} ✓" if status == "done" else f"{stage} ✗ {status}")
    return " · ".join(parts)


rows = pd.DataFrame(
    [
        {
            "run": run.label,
            "study": run.study or "?",
            "status": run.status,
            "stages": _stages(run),
            "models": ", ".join(run.compared),
            "updated": _age(run.updated),
            "tables": len(run.tables),
            "problem": run.error or "",
        }
        for run in runs
    ]
)
done = {run.label: set(run.done) for run in runs}

with st.container(border=True):
    columns = st.columns(4)
    studies = columns[0].multiselect("Study", shared.options_of(rows, "study"), key="f_study")
    statuses = columns[1].multiselect("Status", shared.options_of(rows, "status"), key="f_status")
    stages = columns[2].multiselect("Has finished stage", list(STAGE_NAMES), key="f_stage")
    model = columns[3].text_input("Model contains", key="f_model")

shown = rows
if studies:
    shown = shown[shown["study"].isin(studies)]
if statuses:
    shown = shown[shown["status"].isin(statuses)]
if stages:
    shown = shown[[set(stages) <= done[label] for label in shown["run"]]]
if model:
    shown = shown[shown["models"].str.contains(model, case=False, regex=False)]
st.session_state["_run_list_labels"] = list(shown["run"])


def _select_clicked_rows() -> None:
    """Rows clicked in the list become the runs to show (runs before the next rerun, so the
    sidebar's widget state may still be set)."""
    clicked = st.session_state["run_list"].selection.rows
    labels = st.session_state.get("_run_list_labels", [])
    picked = [labels[i] for i in clicked if i < len(labels)]
    if picked:
        st.session_state[shared.SELECTED_KEY] = picked


st.caption(
    f"{len(shown)} of {len(rows)} run folders under {shared.code(runs_dir)}. Click rows to show "
    "those runs."
)
st.dataframe(
    shown if shown["problem"].any() else shown.drop(columns=["problem"]),
    hide_index=True,
    key="run_list",
    on_select=_select_clicked_rows,
    selection_mode="multi-row",
    column_config={
        "run": st.column_config.TextColumn("run", help="folder under the runs directory"),
        "stages": st.column_config.TextColumn("stages", help="planned stages: ✓ done, ✗ not"),
        "tables": st.column_config.NumberColumn("tables", help="tables in results/", width=60),
        "problem": st.column_config.TextColumn("problem", width="large"),
    },
)
shared.table_download(shown, "runs", key="runs")

broken = [run for run in runs if run.error]
for run in broken:
    st.error(f"**{shared.md(run.label)}** cannot be read: {shared.md(run.error)}")
incomplete = [run for run in runs if not run.error and run.missing]
if incomplete:
    with st.expander(f"{len(incomplete)} run(s) with missing stages"):
        for run in incomplete:
            notes = "; ".join(f"{s}: {run.stage_note(s)}" for s in run.missing)
            st.markdown(
                f"- **{shared.md(run.label)}** ({shared.md(run.status)}): {shared.md(notes)}"
            )
st.caption("Pick runs to look at in the sidebar (**Runs to show**); the other pages draw them.")
