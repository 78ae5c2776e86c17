"""The study's ``train`` section: sizes, validation messages, checkpoint references."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import StudyError
from probe.study import parse_study
from probe.training.config import PretrainJob, model_sizes, saved_steps
from probe.validate import check_study

PRETRAIN = {"name": "tiny", "kind": "pretrain", "steps": 100, "save_steps": [10, 50]}


def test_named_sizes_follow_turc_et_al_and_fields_override_them() -> None:
    tiny = model_sizes(PretrainJob(**PRETRAIN))
    assert tiny == {
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 512,
        "max_position_embeddings": 512,
    }
    base = model_sizes(PretrainJob(**PRETRAIN, size="base"))
    assert (
        base["hidden_size"],
        base["num_hidden_layers"],
        base["num_attention_heads"],
        base["intermediate_size"],
    ) == (768, 12, 12, 3072)
    custom = model_sizes(PretrainJob(**PRETRAIN, size="mini", n_layers=3, d_ff=100))
    assert (custom["hidden_size"], custom["num_hidden_layers"], custom["intermediate_size"]) == (
        256,
        3,
        100,
    )


def test_every_problem_names_the_job_and_the_values() -> None:
    with pytest.raises(StudyError) as info:
        parse_study(
            {
                "name": "x",
                "train": [
                    {**PRETRAIN, "d_model": 100, "n_heads": 3},
                    {"name": "ft", "kind": "finetune", "model": "embedded:minilm", "task": "sst2"},
                    {"name": "ft2", "kind": "finetune", "model": "m", "task": "sts", "steps": 1},
                    {**PRETRAIN, "name": "p", "batch_size": 10, "grad_accum": 4},
                    {**PRETRAIN, "name": "q", "typo": 1},
                ],
            }
        )
    message = str(info.value)
    assert "d_model (100) must be divisible by n_heads (3)" in message
    assert "job 'ft': give exactly one of steps or epochs" in message
    assert "train.jobs.2.finetune.task: 'sts' is not one of sst2" in message
    assert "batch_size (10) must be a multiple of grad_accum (4)" in message
    assert "train.jobs.4.pretrain.typo: unknown key" in message


def test_train_may_be_a_list_and_job_names_are_unique() -> None:
    study = parse_study({"name": "x", "train": [PRETRAIN]})
    assert study.stages == ["train"] and study.train.jobs[0].name == "tiny"
    with pytest.raises(StudyError, match=r"job names must be unique, got \['tiny'\]"):
        parse_study({"name": "x", "train": [PRETRAIN, PRETRAIN]})


def test_every_saved_step_includes_the_start_and_the_end() -> None:
    job = PretrainJob(**{**PRETRAIN, "save_every": 40})
    assert saved_steps(job, 100) == [0, 10, 40, 50, 80, 100]


def test_check_catches_bad_checkpoint_references_before_any_training(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b .\n\nc d .\n\ne f .\n")
    pretrain = {**PRETRAIN, "corpus": str(corpus)}
    study = parse_study(
        {
            "name": "x",
            "models": [
                {"spec": "trained:tiny@50", "name": "step-50"},
                {"spec": "trained:tiny@60", "name": "step-60"},
                {"spec": "trained:tiy", "name": "typo"},
            ],
            "train": [
                {
                    "name": "ft",
                    "kind": "finetune",
                    "model": "trained:tiny",
                    "task": "upos",
                    "steps": 5,
                },
                pretrain,
            ],
        }
    )
    with pytest.raises(StudyError) as info:
        check_study(study)
    message = str(info.value)
    assert "train.jobs.0 (ft).model: 'trained:tiny' names no earlier training job 'tiny'" in message
    assert "'trained:tiny@60': job 'tiny' saves no step 60; it saves [0, 10, 50, 100]" in message
    assert "names no earlier training job 'tiy'; did you mean 'tiny'?" in message
    assert "step-50" not in message


def test_check_names_a_missing_corpus_and_a_wrong_split() -> None:
    study = parse_study(
        {
            "name": "x",
            "train": [
                {**PRETRAIN, "corpus": "wikitext3"},
                {**PRETRAIN, "name": "b", "train_split": "train"},
            ],
        }
    )
    with pytest.raises(StudyError) as info:
        check_study(study)
    message = str(info.value)
    assert (
        "'wikitext3' is neither a file, a folder nor a dataset; did you mean 'wikitext2'?"
        in message
    )
    assert "train_split: wikitext2 has no split 'train'; it has dev, test" in message
