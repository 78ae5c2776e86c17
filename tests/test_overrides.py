"""``--set`` overrides are typed like YAML, validated like the file, blamed when they break it."""

from __future__ import annotations

import pytest

from probe.overrides import (
    OverrideError,
    apply_overrides,
    parse_override,
    parse_sweep,
    sweep_overrides,
)


def _problems(data: dict) -> list[str]:
    # A stand-in schema: limit values must be positive ints, and only known top-level keys.
    problems = [f"{k}: unknown key" for k in data if k not in ("seed", "probe", "models")]
    for split, value in (data.get("probe", {}).get("limit") or {}).items():
        if split not in ("train", "dev", "test"):
            problems.append(f"probe.limit.{split}: not a split")
        elif not isinstance(value, int) or value <= 0:
            problems.append(f"probe.limit.{split}: must be > 0, got {value!r}")
    return problems


@pytest.mark.parametrize(
    ("text", "value"),
    [("seed=1", 1), ("x=true", True), ("x=[0, 1]", [0, 1]), ("x=null", None),
     ("x=0.5", 0.5), ("x=embedded:minilm", "embedded:minilm"), ("x=", "")],
)  # fmt: skip
def test_values_are_typed_as_yaml(text: str, value: object) -> None:
    assert parse_override(text).value == value


@pytest.mark.parametrize("text", ["seed", "=1", "a..b=1", "a.b c=1", "a.-1=2"])
def test_malformed_overrides_say_what_is_expected(text: str) -> None:
    with pytest.raises(OverrideError, match="expected KEY=VALUE with a dotted key"):
        parse_override(text)


def test_overrides_create_missing_mappings_and_index_lists() -> None:
    data = {"seed": 0, "models": [{"spec": "a"}], "probe": {"tasks": ["upos"]}}
    new, applied, problems = apply_overrides(
        data, ["probe.limit.train=5", "models.0.spec=b", "seed=2"], _problems
    )
    assert problems == [] and len(applied) == 3
    probe = {"tasks": ["upos"], "limit": {"train": 5}}
    assert new == {"seed": 2, "models": [{"spec": "b"}], "probe": probe}
    assert data["seed"] == 0  # the file's mapping is left alone


def test_each_bad_override_is_reported_and_left_out_the_rest_applies() -> None:
    data = {"seed": 0, "probe": {"limit": {}}}
    new, applied, problems = apply_overrides(
        data,
        ["probe.limit.trian=5", "probe.limit.dev=-1", "models.3.spec=x", "seedd=1", "seed=7"],
        _problems,
    )
    assert applied == ["seed=7"] and new == {"seed": 7, "probe": {"limit": {}}}
    assert problems == [
        "--set probe.limit.trian=5: probe.limit.trian: not a split",
        "--set probe.limit.dev=-1: probe.limit.dev: must be > 0, got -1",
        "--set models.3.spec=x: models.3: no item 3 (not a list)",
        "--set seedd=1: seedd: unknown key",
    ]


def test_problems_already_in_the_file_are_not_blamed_on_an_override() -> None:
    data = {"seed": 0, "oops": 1}
    _, applied, problems = apply_overrides(data, ["seed=3"], _problems)
    assert applied == ["seed=3"] and problems == []


def test_sweeps_split_outside_brackets_and_combine() -> None:
    assert parse_sweep("probe.C=[0.1,1],[10]") == ("probe.C", ["[0.1,1]", "[10]"])
    assert sweep_overrides(["seed=0,1", "probe.limit.train=5,10"]) == [
        ["seed=0", "probe.limit.train=5"],
        ["seed=0", "probe.limit.train=10"],
        ["seed=1", "probe.limit.train=5"],
        ["seed=1", "probe.limit.train=10"],
    ]
    with pytest.raises(OverrideError, match="expected KEY=V1,V2"):
        parse_sweep("seed")
