"""Every study mistake found by the reliability review fails in validation, on one short line.

Each of these once got past validation: some crashed after a model had loaded, some exited 2
after minutes of work, some ran to a "complete" run full of NaN, some wrote outside the run
layout. Validation (:func:`probe.validate.validate_study`) reads only YAML, model configs and
data files, so each case here takes well under a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from probe.errors import StudyError
from probe.validate import validate_study

# max_length: the tiny test model has 64 positions.
FINETUNE = {"kind": "finetune", "name": "cls", "task": "sst2", "steps": 2, "max_length": 64}
FINITE = "Input should be a finite number"
LANDSCAPE_TRAIN = [{**FINETUNE, "name": "cls"}]


def _probe(**capture) -> dict:
    return {"capture": capture, "probe": {"tasks": ["upos"]}}


CASES: dict[str, tuple[dict, str]] = {
    "negative seed": ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    "seed above 2**32 - 1": ({"seed": 2**32}, "seed: Input should be less than or equal to"),
    "negative probe seed": ({"probe": {"tasks": ["upos"], "seeds": [-1]}}, "probe.seeds.0"),
    "max_length past the positions": (_probe(max_length=100), "capture.max_length: 100 is more"),
    "stride of a whole window": (_probe(max_length=20, stride=18), "capture.stride: 18"),
    "infinite C": ({"probe": {"tasks": ["upos"], "C": [math.inf]}}, f"probe.C.0: {FINITE}"),
    "capture layer past the model": (_probe(layers=[0, 5]), "capture.layers: [5] past model"),
    "mix over a layer subset": (
        {"capture": {"layers": [0, 1]}, "probe": {"tasks": ["upos"], "mix": True}},
        "probe.mix: a scalar mix needs every layer",
    ),
    "no models": ({"models": []}, "models: List should have at least 1 item"),
    "name of 256 characters": ({"name": "x" * 256}, "name: is 256 characters long"),
    "name '..'": ({"name": ".."}, "name: '..' is not a folder name"),
    "name '.'": ({"name": "."}, "name: '.' is not a folder name"),
    "trained model without a train section": (
        {"models": ["trained:nojob"]}, "need the train section that makes them"
    ),
    "infinite epochs": ({"train": [{**FINETUNE, "epochs": math.inf}]}, f"epochs: {FINITE}"),
    "infinite lr": ({"train": [{**FINETUNE, "lr": math.inf}]}, f"lr: {FINITE}"),
    "infinite weight decay": (
        {"train": [{**FINETUNE, "weight_decay": math.inf}]}, f"weight_decay: {FINITE}"
    ),
    "adam betas of 1": (
        {"train": [{**FINETUNE, "adam_betas": [1, 1]}]}, "adam_betas.0: Input should be less than 1"
    ),
    "freeze_layers past the model": (
        {"train": [{**FINETUNE, "freeze_layers": 10}]}, "freeze_layers: 10 but"
    ),
    "training job named '..'": (
        {"train": [{**FINETUNE, "name": ".."}]}, "name: '..' is not a folder name"
    ),
    "infinite random-plane span": (
        {"train": LANDSCAPE_TRAIN, "landscape": {"random_plane": {"span": math.inf}}},
        f"landscape.random_plane.span: {FINITE}",
    ),
    "infinite line alpha": (
        {"train": LANDSCAPE_TRAIN, "landscape": {"line": {"alpha": [-math.inf, 1.0]}}},
        f"landscape.line.alpha.0: {FINITE}",
    ),
    "isotropy_top_k past the width": (
        {"embeddings": {"tasks": ["stsb"], "whitening": ["raw"], "isotropy_top_k": [1, 1000]}},
        "embeddings.isotropy_top_k: [1000] more than model tiny's 32 dimensions",
    ),
    "no poolings at all": (
        {"embeddings": {"tasks": ["stsb"], "whitening": ["raw"], "poolings": [], "layerwise": []}},
        "embeddings: poolings and layerwise are both empty",
    ),
    "runs_dir that is a file": ({"runs_dir": "a_file"}, "runs_dir: a_file is a file"),
}  # fmt: skip
if not torch.cuda.is_available():
    CASES["cuda where there is none"] = ({"device": "cuda"}, "device: 'cuda' is not available")
if not torch.backends.mps.is_available():
    CASES["mps where there is none"] = ({"device": "mps"}, "device: 'mps' is not available")


@pytest.mark.parametrize("case", list(CASES))
def test_mistake_is_one_short_line_from_validation(
    case: str, tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # messages name `study.yaml`, as they would for a user
    Path("a_file").write_text("not a folder")
    change, needle = CASES[case]
    study = {"name": "x", "models": [{"spec": str(tiny_model_dir), "name": "tiny"}], **change}
    for job in study.get("train", []):
        job.setdefault("model", str(tiny_model_dir))
    Path("study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    with pytest.raises(StudyError) as info:
        validate_study("study.yaml")
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message and len(f"error: {message}") <= 300, message


def test_the_same_study_without_the_mistakes_is_valid(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    study = {
        "name": "x",
        "seed": 2**32 - 1,
        "models": [{"spec": str(tiny_model_dir), "name": "tiny"}],
        "capture": {"layers": [0, 2], "max_length": 64, "stride": 31},
        "probe": {"tasks": ["upos"], "C": [0.1, 10.0]},
        "train": [{**FINETUNE, "model": str(tiny_model_dir), "freeze_layers": 3}],
    }
    Path("study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    assert validate_study("study.yaml").seed == 2**32 - 1  # the bounds are inclusive
