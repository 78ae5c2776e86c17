"""Run details: manifest (status, device, versions, git commit), stage timings, config, files."""

from __future__ import annotations

import json

import pandas as pd
import shared
import streamlit as st

from probe.runs import RunError
from probe.stages import STAGE_NAMES

st.title("Run details")
runs = shared.need_runs()


def _size(path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "?"


for run in runs:
    st.header(shared.md(run.label), divider="gray")
    st.caption(shared.code(run.path))
    if run.error:
        st.error(f"The manifest cannot be read: {shared.md(run.error)}")
    manifest = run.manifest
    export_errors = manifest.get("figure_export_errors") or {}
    if export_errors:
        first = next(iter(export_errors.values()))
        formats = ", ".join(first.get("formats", [])) if isinstance(first, dict) else "?"
        reason = first.get("error", "?") if isinstance(first, dict) else str(first)
        st.warning(
            f"{len(export_errors)} figure(s) were written as HTML only: the study asked for "
            f"{shared.md(formats)}, and static export failed ({shared.md(reason)}). "
            "`probe export` rewrites them.",
            icon=":material/image_not_supported:",
        )
    columns = st.columns(4)
    columns[0].metric("status", run.status)
    columns[1].metric(
        "device",
        str(manifest.get("device", "?")),
        help=shared.md(manifest.get("device_name", "")),
    )
    total = sum(run.seconds.values())
    columns[2].metric(
        "stage time",
        "–" if not run.seconds else f"{total / 60:.1f} min" if total >= 60 else f"{total:.0f} s",
    )
    columns[3].metric("seed", str(manifest.get("seed", "?")))
    st.markdown(
        f"**study** {shared.md(run.study or '?')} · "
        f"**models** {shared.md(', '.join(run.compared) or '?')} · "
        f"**created** {shared.md(run.created or '?')} · "
        f"**finished** {shared.md(run.finished or '–')} · "
        f"**git** {shared.code(manifest.get('git_commit') or '?')} · "
        f"**torch threads** {shared.md(manifest.get('torch_threads', '?'))}"
    )

    stages = pd.DataFrame(
        [
            {
                "stage": stage,
                "planned": stage in run.planned,
                "status": run.stages.get(stage, "not started" if stage in run.planned else ""),
                "seconds": run.seconds.get(stage),
                "note": ""
                if run.stages.get(stage) == "done" or stage not in run.planned
                else run.stage_note(stage),
            }
            for stage in STAGE_NAMES
            if stage in run.planned or stage in run.stages
        ]
    )
    left, right = st.columns(2)
    with left:
        st.subheader("Stages")
        if stages.empty:
            st.info("No stage recorded.")
        else:
            st.dataframe(stages, hide_index=True)
        st.subheader("Tables")
        rows = []
        for name in run.tables:
            path = run.path / "results" / f"{name}.parquet"
            try:
                frame = shared.read_table(run, name)
                rows.append(
                    {
                        "table": name,
                        "rows": len(frame),
                        "columns": frame.shape[1],
                        "size": _size(path),
                        "problem": "",
                    }
                )
            except RunError as exc:
                rows.append(
                    {
                        "table": name,
                        "rows": None,
                        "columns": None,
                        "size": _size(path),
                        "problem": str(exc),
                    }
                )
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True)
        else:
            st.info("No tables in results/ yet.")
        if run.missing_tables:
            st.caption("Missing: " + ", ".join(shared.code(t) for t in run.missing_tables))
    with right:
        st.subheader("Versions")
        versions = manifest.get("versions") or {}
        if versions:
            st.dataframe(
                pd.DataFrame(list(versions.items()), columns=["package", "version"]),
                hide_index=True,
            )
        st.subheader("Files")
        figures = sorted(p.name for p in (run.path / "figures").glob("*.*"))
        checkpoints = sorted(
            p.relative_to(run.path / "checkpoints").as_posix()
            for p in (run.path / "checkpoints").glob("*/*")
            if p.is_dir()
        )
        logs = sorted(p.name for p in (run.path / "logs").glob("*"))
        st.markdown(
            f"**figures/** {len(figures)} files · **checkpoints/** {len(checkpoints)} · "
            f"**logs/** {len(logs)}"
        )
        if checkpoints:
            shown = ", ".join(checkpoints[:40]) + (" …" if len(checkpoints) > 40 else "")
            st.caption(shared.md(shown))

    study_yaml = run.path / "study.yaml"
    with st.expander("Study config (study.yaml)"):
        if study_yaml.is_file():
            st.code(study_yaml.read_text(), language="yaml")
        elif manifest.get("config"):
            st.code(json.dumps(manifest["config"], indent=2), language="json")
        else:
            st.info("No study.yaml and no config in the manifest.")
    with st.expander("manifest.json"):
        if manifest:
            st.json(manifest, expanded=1)
        else:
            st.info("No readable manifest.")
