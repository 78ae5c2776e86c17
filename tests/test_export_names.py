"""`probe export` writes only inside its output folder, whatever names the tables hold."""

from __future__ import annotations

from pathlib import Path

from probe.export import export_run
from tests.test_dashboard import _manifest, _probe_rows, _summary_rows, _write_run


def test_a_crafted_task_or_model_name_cannot_write_outside_the_output_folder(
    tmp_path: Path,
) -> None:
    probe, summary = _probe_rows(0.0), _summary_rows(0.0)
    for frame in (probe, summary):
        frame["task"] = frame["task"].map({"upos": "../../escape", "ner_conll2003": "/tmp/abs"})
        frame["model"] = "../" + frame["model"]
    run = _write_run(
        tmp_path / "runs",
        "pos/20260101-000000",
        _manifest(
            "pos", "complete", {"probe": "done"}, {"probe": {"tasks": ["upos"], "mix": True}}
        ),
        {"probe": probe, "probe_summary": summary},
    )
    before = set(tmp_path.rglob("*"))
    out = tmp_path / "runs" / "pos" / "20260101-000000" / "figures" / "out"
    result = export_run(run, formats="html", style="screen", out=out)
    assert result.paths, "the crafted names still give figures"
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert written and all(p.parent == out for p in written), sorted(map(str, written))
    assert {p.name for p in written} >= {f"{name}.html" for name in result.figures}
    assert all(".." not in p.name and not p.name.startswith(".") for p in written)
