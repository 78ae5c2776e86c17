"""Study YAML that would hang, blow up or silently lose a setting gives one short line instead."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from probe.errors import StudyError
from probe.study import load_study


def _bomb(width: int, levels: int, field: str = "device") -> str:
    """The "billion laughs": each anchor repeats the previous one ``width`` times."""
    lines = ["a0: &a0 [" + ", ".join(["cpu"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nname: x\n{field}: *a{levels - 1}\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages name `study.yaml`, as they would for a user


def _error(tmp_path: Path, text: str) -> str:
    path = Path("study.yaml")
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(StudyError) as info:
        load_study(path)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message and len(message) <= 300, message
    return message


@pytest.mark.parametrize(("width", "levels"), [(9, 9), (6, 6), (3, 12)])
def test_alias_bomb_is_refused_quickly_in_one_short_line(
    tmp_path: Path, width: int, levels: int
) -> None:
    assert "expands to more than" in _error(tmp_path, _bomb(width, levels))


@pytest.mark.parametrize(("open_", "close"), [("[", "]"), ("{a: ", "}")])
def test_two_thousand_levels_of_nesting_is_an_error_not_a_recursion_error(
    tmp_path: Path, open_: str, close: str
) -> None:
    text = "name: x\nseed: " + open_ * 2000 + "1" + close * 2000 + "\n"
    assert "nests more than" in _error(tmp_path, text)


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    assert "refers to its own anchor" in _error(tmp_path, "name: x\nseed: &a [*a]\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "name: x\nseed: 1\nprobe: {tasks: [upos]}\nseed: 2\n",
            "line 4: duplicate key 'seed' (first on line 2)",
        ),
        (
            "name: x\nprobe:\n  tasks: [upos]\n  C: [1]\n  tasks: [xpos]\n",
            "line 5: duplicate key 'tasks' (first on line 3)",
        ),
    ],
)
def test_duplicate_keys_are_named_with_both_lines(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in _error(tmp_path, text)


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("name: x\nprobe: &p {tasks: [upos], C: [1]}\nembeddings: null\n")
    assert load_study(path).probe.tasks == ["upos"]
    path.write_text("name: x\ncapture: {<<: {pooling: mean, layers: all}, pooling: first}\n")
    assert load_study(path).capture.pooling == "first"  # an explicit key overrides a merged one


def test_a_long_value_is_echoed_cut_short(tmp_path: Path) -> None:
    message = _error(tmp_path, "name: x\ndevice: " + "y" * 100_000 + "\n")
    assert "device: 'yyyy" in message and "..." in message and "is not one of" in message


def test_many_problems_are_counted_not_listed(tmp_path: Path) -> None:
    text = "name: x\nmodels: [" + ", ".join(["{spec: 1, bad: 2}"] * 500) + "]\n"
    assert "and 995 more (`probe check` lists them)" in _error(tmp_path, text)


def test_a_huge_file_is_not_read_as_a_study(tmp_path: Path) -> None:
    assert "is not a study file" in _error(tmp_path, "name: x\n" + "#" * (2 << 20) + "\n")
