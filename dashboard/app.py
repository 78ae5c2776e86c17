"""The ``probe`` dashboard: browse run folders and their figures.

    streamlit run dashboard/app.py                       # runs under ./runs
    PROBE_RUNS_DIR=/data/runs streamlit run dashboard/app.py
    http://localhost:8501/?run=pipeline/20260101-120000   # deep link to a run

The sidebar picks the runs to show (several runs are drawn on one chart, series labelled by run)
and may narrow the runs directory to a folder inside it; each page reads the tables of one stage.
The app only reads run folders, and only under ``$PROBE_RUNS_DIR`` (default ``runs``): a link can
select runs, never another folder. ``.streamlit/config.toml`` binds it to localhost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script: make its sibling modules importable by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import shared

st.set_page_config(page_title="probe runs", page_icon=":material/layers:", layout="wide")

PAGES = [
    st.Page("views/runs.py", title="Runs", icon=":material/folder_open:", default=True),
    st.Page("views/probing.py", title="Probe curves", icon=":material/show_chart:"),
    st.Page("views/summary.py", title="Cross-task summary", icon=":material/stacked_bar_chart:"),
    st.Page("views/mdl.py", title="MDL probes", icon=":material/compress:"),
    st.Page("views/structural.py", title="Structural probes", icon=":material/account_tree:"),
    st.Page("views/training.py", title="Training", icon=":material/trending_down:"),
    st.Page("views/ablations.py", title="Pretraining ablations", icon=":material/compare:"),
    st.Page("views/strategies.py", title="Fine-tuning strategies", icon=":material/tune:"),
    st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    st.Page("views/landscape.py", title="Landscape", icon=":material/terrain:"),
    st.Page("views/cka.py", title="Layer similarity (CKA)", icon=":material/grid_on:"),
    st.Page("views/attention.py", title="Attention heads", icon=":material/visibility:"),
    st.Page("views/details.py", title="Run details", icon=":material/info:"),
]
page = st.navigation(PAGES)

with st.sidebar:
    root = shared.configured_runs_dir()
    linked = st.query_params.get(shared.RUNS_DIR_KEY)
    if linked and shared.within_runs_dir(linked) is None:
        st.warning(
            f"This link asks for the runs directory {shared.code(linked)}; ignored: the dashboard "
            f"reads only {shared.code(root)} (set PROBE_RUNS_DIR where it is started)."
        )
    runs_dir = st.text_input(
        "Runs directory",
        value=shared.default_runs_dir(),
        key=shared.RUNS_DIR_KEY,
        help="The configured runs directory (PROBE_RUNS_DIR), or a folder inside it: a study's "
        "folder or one run folder.",
    )
    if shared.within_runs_dir(runs_dir) is None:
        st.error(
            f"{shared.code(runs_dir)} is outside the configured runs directory "
            f"{shared.code(root)}; start the dashboard with PROBE_RUNS_DIR set to read it."
        )
        runs_dir = str(root)
    runs = shared.runs_in(runs_dir) if Path(runs_dir).is_dir() else []
    by_label = {run.label: run for run in runs}
    # Keep the selection valid when the folder changes (a stale label would be an error).
    chosen = [label for label in st.session_state.get(shared.SELECTED_KEY, []) if label in by_label]
    if shared.SELECTED_KEY not in st.session_state:  # a fresh session: the link decides
        wanted = st.query_params.get_all("run")
        # Never show another run in place of one a link names: say which are unknown.
        st.session_state[shared.UNKNOWN_LINK_KEY] = [
            label for label in wanted if label not in by_label
        ]
        chosen = [label for label in wanted if label in by_label]
        st.session_state[shared.LINK_SELECTION_KEY] = chosen
        if not wanted:
            chosen = shared.default_selection(runs)
    st.session_state[shared.SELECTED_KEY] = chosen
    selected = st.multiselect(
        "Runs to show",
        options=list(by_label),
        key=shared.SELECTED_KEY,
        format_func=shared.short_label,
        help="Two or more runs are drawn on one chart, each series labelled by its run. "
        "Shown as time · study; the address bar links to this selection.",
    )
    # The address bar always links to what is shown (a shareable deep link).
    if st.query_params.get_all("run") != selected:
        if selected:
            st.query_params["run"] = selected
        else:
            st.query_params.pop("run", None)
    st.session_state["_selected_infos"] = [by_label[label] for label in selected]
    st.session_state["_all_runs"] = runs
    st.session_state["_runs_dir"] = runs_dir
    if st.button("Reload", icon=":material/refresh:", help="Re-read run folders now"):
        st.cache_data.clear()
        st.rerun()

shared.say_unknown_link_runs()
page.run()
