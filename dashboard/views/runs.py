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
        f"The runs directory `{runs_dir}` does not exist. Choose another one in the sidebar, or "
        "start a run: `probe run studies/layerwise_pos.yaml`."
    )
    st.stop()
if not runs:
    st.info(
        f"No run folders under `{runs_dir}` yet (a run folder is `<study>/<timestamp>/` with a "
        "`manifest.json`). Start one with `probe run studies/layerwise_pos.yaml`."
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


def _missing(run) -> str:
    """Planned stages that did not finish, with their state: ``probe (running)``."""
    return ", ".join(f"{stage} ({run.stages.get(stage, 'not started')})" for stage in run.missing)


rows = pd.DataFrame(
    [
        {
            "run": run.label,
            "study": run.study or "?",
            "models": ", ".join(run.compared),
            "created": run.created.replace("T", " "),
            "status": run.status,
            "updated": _age(run.updated),
            "stages done": ", ".join(run.done),
            "missing": _missing(run),
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

st.caption(f"{len(shown)} of {len(rows)} run folders under `{runs_dir}`")
st.dataframe(
    shown,
    hide_index=True,
    key="run_list",
    column_config={
        "run": st.column_config.TextColumn("run", help="folder under the runs directory"),
        "tables": st.column_config.NumberColumn("tables", help="tables in results/"),
        "problem": st.column_config.TextColumn("problem", width="large"),
    },
)
shared.table_download(shown, "runs", key="runs")

broken = [run for run in runs if run.error]
for run in broken:
    st.error(f"**{run.label}** cannot be read: {run.error}")
incomplete = [run for run in runs if not run.error and run.missing]
if incomplete:
    with st.expander(f"{len(incomplete)} run(s) with missing stages"):
        for run in incomplete:
            notes = "; ".join(f"{s}: {run.stage_note(s)}" for s in run.missing)
            st.markdown(f"- **{run.label}** ({run.status}): {notes}")
st.caption("Pick runs to look at in the sidebar (**Runs to show**); the other pages draw them.")
