"""``probe run --set/--sweep``, several studies, ``probe check``, and ``report_to`` trackers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from rich.console import Console

from probe.errors import StudyError
from probe.runner import run_studies
from probe.study import load_study
from tests.conftest import run_cli
from tests.own_data import OWN

UPOS_DE = {"name": "upos_de", "format": "conllu", "path": str(OWN / "ud_german_tiny"),
           "label": "upos"}  # fmt: skip


def _study(tmp_path: Path, model: str, name: str = "tiny_own", **extra: object) -> Path:
    study = {
        "name": name,
        "models": [{"spec": model, "name": "tiny"}],
        "probe": {"tasks": [UPOS_DE], "C": [1.0], "bootstrap": 0, "control": False,
                  "limit": {"train": 20, "dev": 6, "test": 10}},
        "figures": ["html"],
        **extra,
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _console() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_set_overrides_are_typed_validated_and_recorded(tmp_path: Path, tiny_model_dir) -> None:
    path = _study(tmp_path, str(tiny_model_dir))
    study = load_study(path, ["probe.limit.train=12", "seed=3", "capture.layers=[0, 2]"])
    assert study.probe.limit["train"] == 12 and study.seed == 3 and study.capture.layers == [0, 2]
    with pytest.raises(StudyError) as info:
        load_study(path, ["probe.limit.train=-1", "probe.C=[1.0]", "seedd=1"])
    assert info.value.problems == [
        f"{path}: --set probe.limit.train=-1: probe.limit.train: Input should be greater than 0",
        f"{path}: --set seedd=1: seedd: unknown key",
    ]
    (run_dir,) = run_studies(
        [path], overrides=["probe.limit.test=8", "seed=5"], runs_dir=tmp_path / "runs",
        console=_console(),
    )  # fmt: skip
    resolved = (run_dir / "study.yaml").read_text()
    assert "# --set probe.limit.test=8\n# --set seed=5\n" in resolved
    assert yaml.safe_load(resolved)["probe"]["limit"]["test"] == 8
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["overrides"] == ["probe.limit.test=8", "seed=5"]
    assert manifest["config"]["seed"] == 5


def test_sweep_and_several_studies_give_one_run_folder_each(tmp_path: Path, tiny_model_dir) -> None:
    first = _study(tmp_path, str(tiny_model_dir), "first")
    second = _study(tmp_path, str(tiny_model_dir), "second")
    run_dirs = run_studies(
        [first, second], sweeps=["probe.limit.train=10,20"], runs_dir=tmp_path / "runs",
        console=_console(),
    )  # fmt: skip
    assert len(run_dirs) == len(set(run_dirs)) == 4
    limits = [yaml.safe_load((d / "study.yaml").read_text())["probe"]["limit"]["train"]
              for d in run_dirs]  # fmt: skip
    assert limits == [10, 20, 10, 20]
    sizes = [
        pd.read_parquet(d / "results" / "probe.parquet").query("split == 'test'").shape[0]
        for d in run_dirs
    ]
    assert sizes[0] == sizes[1]  # the test split does not depend on the train limit


def test_every_run_is_validated_before_the_first_starts(tmp_path: Path, tiny_model_dir) -> None:
    path = _study(tmp_path, str(tiny_model_dir))
    with pytest.raises(StudyError, match=r"--set probe\.limit\.train=0"):
        run_studies([path], sweeps=["probe.limit.train=10,0"], runs_dir=tmp_path / "runs",
                    console=_console())  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_resume_only_picks_a_run_of_the_same_configuration(tmp_path: Path, tiny_model_dir) -> None:
    path = _study(tmp_path, str(tiny_model_dir))
    (run_dir,) = run_studies([path], overrides=["seed=1"], runs_dir=tmp_path / "runs",
                             console=_console())  # fmt: skip
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (other,) = run_studies([path], overrides=["seed=2"], resume=True,
                           runs_dir=tmp_path / "runs", console=_console())  # fmt: skip
    assert other != run_dir
    (same,) = run_studies([path], overrides=["seed=1"], resume=True,
                          runs_dir=tmp_path / "runs", console=_console())  # fmt: skip
    assert same == run_dir


def test_report_to_tensorboard_logs_the_probe_table(tmp_path: Path, tiny_model_dir) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = _study(tmp_path, str(tiny_model_dir), report_to="tensorboard")
    (run_dir,) = run_studies([path], runs_dir=tmp_path / "runs", console=_console())
    events = EventAccumulator(str(run_dir / "logs" / "tensorboard"))
    events.Reload()
    table = pd.read_parquet(run_dir / "results" / "probe.parquet")
    row = table[(table.probe == "linear") & (table.split == "test")
                & (table.metric == "accuracy")].iloc[-1]  # fmt: skip
    tag = "probe/tiny/upos_de/linear/task/seed=0/test/accuracy"
    logged = {e.step: e.value for e in events.Scalars(tag)}
    assert logged[int(row.layer)] == pytest.approx(row.value)


def test_check_reports_a_wrong_column_a_missing_file_and_a_bad_override_at_once(
    tmp_path: Path, tiny_model_dir
) -> None:
    study = {
        "name": "broken",
        "models": [str(tiny_model_dir)],
        "probe": {"tasks": [
            UPOS_DE,
            {"name": "upos_fr", "format": "conllu", "path": str(tmp_path / "UD_French"),
             "label": "upos"},
            {"name": "number", "format": "tsv", "path": str(OWN / "subject_number.tsv"),
             "text": "sentense", "label": "subject_number"},
        ]},
    }  # fmt: skip
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(study))
    result = run_cli("check", str(path), "--set", "probe.limit.trian=5")
    assert result.returncode == 2, result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, result.stderr
    assert "--set probe.limit.trian=5: probe.limit.trian: 'trian' is not one of" in problems[0]
    assert "UD_French does not exist" in problems[1]
    assert "subject_number.tsv:1: no column 'sentense'" in problems[2]


def test_checking_a_study_imports_neither_torch_nor_transformers(
    tmp_path: Path, tiny_model_dir
) -> None:
    # What keeps `probe check` at about a second (benchmarks/bench_check.py measures it).
    import subprocess
    import sys

    path = _study(tmp_path, str(tiny_model_dir))
    code = (
        "import sys; from probe.validate import check_studies; "
        f"assert check_studies([{str(path)!r}])[0][2] == []; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_of_a_good_study_says_ok(tmp_path: Path, tiny_model_dir) -> None:
    result = run_cli("check", str(_study(tmp_path, str(tiny_model_dir))), "--sweep", "seed=0,1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok: ") == 2
