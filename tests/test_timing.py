"""The time breakdown: parts recorded per stage, summed per part, the rest of the stage shown."""

from __future__ import annotations

import pytest

from probe.timing import PartTimer, breakdown


def test_parts_are_summed_per_stage_and_the_rest_is_other() -> None:
    manifest = {
        "stages": {
            "probe": {
                "seconds": 10.0,
                "parts": [
                    {"part": "features", "split": "train", "seconds": 2.0},
                    {"part": "task probe", "seconds": 3.0},
                    {"part": "features", "split": "dev", "seconds": 1.0},
                ],
            },
            "train": {"seconds": 10.0},
        }
    }
    frame = breakdown(manifest)
    assert frame[["stage", "part", "seconds", "calls"]].values.tolist() == [
        ["probe", "features", 3.0, 2],
        ["probe", "task probe", 3.0, 1],
        ["probe", "(other)", 4.0, 1],
        ["train", "(whole stage)", 10.0, 1],
    ]
    assert frame["share"].sum() == pytest.approx(1.0)


def test_a_part_that_raises_is_not_recorded_and_labels_are_checked() -> None:
    timer = PartTimer()
    with timer.timed("probe", "features", split="train", seed=None):
        pass
    with pytest.raises(ValueError), timer.timed("probe", "task probe"):
        raise ValueError("fit failed")
    assert [(r["part"], r.get("seed", "absent")) for r in timer.records] == [("features", "absent")]
    with pytest.raises(TypeError, match="unknown timing label"), timer.timed("probe", "x", tsk="a"):
        pass
