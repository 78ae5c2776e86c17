from pathlib import Path

import pytest

from probe.errors import StudyError
from probe.study import load_study, parse_study

STUDIES = sorted((Path(__file__).resolve().parents[1] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_every_shipped_study_validates(path: Path) -> None:
    study = load_study(path)
    assert study.name
    assert study.stages, f"{path.name} runs no stage"


def test_misspelled_choice_names_the_field_and_the_allowed_values() -> None:
    with pytest.raises(StudyError) as info:
        parse_study(
            {"name": "x", "capture": {"pooling": "firts"}, "probe": {"tasks": ["upos"]}},
            source="studies/x.yaml",
        )
    message = str(info.value)
    assert message.startswith("studies/x.yaml: capture.pooling: 'firts' is not one of first")
    assert "did you mean 'first'" in message


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(StudyError) as info:
        parse_study(
            {
                "name": "x",
                "seed": "zero",
                "probe": {"tasks": ["upos"], "C": [-1]},
                "typo_section": 1,
            }
        )
    message = str(info.value)
    assert "seed:" in message
    assert "probe.C.0: Input should be greater than 0" in message
    assert "typo_section: unknown key" in message


def test_models_may_be_plain_strings_and_names_must_be_unique() -> None:
    study = parse_study(
        {"name": "x", "models": ["embedded:minilm", "scratch:"], "probe": {"tasks": ["upos"]}}
    )
    assert [m.label for m in study.models] == ["embedded:minilm", "scratch:"]
    with pytest.raises(StudyError, match="unique"):
        parse_study({"name": "x", "models": ["a", "a"], "probe": {"tasks": ["upos"]}})


def test_malformed_yaml_is_one_line_with_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nprobe: {tasks: [upos\n")
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert "malformed YAML (line" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_study_file_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_every_shipped_probe_study_finds_its_tasks_and_data(
    path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.probes.checks import check_probe
    from tests.own_data import EXAMPLES_ROOT

    monkeypatch.chdir(EXAMPLES_ROOT)  # own_data.yaml reads examples/own_data/ (`probe examples`)
    study = load_study(path)
    if study.probe is not None:
        assert check_probe(study) == []  # unknown tasks or missing dataset files
