"""The fine-tuning stop criterion: train until the training subset is fitted, or the budget ends."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from pydantic import ValidationError
from transformers import BertForSequenceClassification

from probe.training.config import FinetuneJob, StopCriterion
from tests.test_training import _context, write_sst2


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    yield
    torch.set_num_threads(threads)


def _job(name: str, model: Path, **overrides) -> dict:
    return {
        "kind": "finetune",
        "task": "sst2",
        "name": name,
        "model": str(model),
        "max_length": 32,
        "steps": 300,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "limit": {"train": 48, "dev": 32},
        **overrides,
    }


def _rows(table: pd.DataFrame, job: str, metric: str) -> pd.DataFrame:
    return table[(table["model"] == job) & (table["metric"] == metric)].sort_values("step")


def test_training_stops_at_the_first_check_where_the_criterion_holds_and_saves_that_step(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.training.stage import run_training

    monkeypatch.setenv("PROBE_DATA_DIR", str(write_sst2(tmp_path / "data")))
    study = {
        "name": "t",
        "seed": 0,
        "figures": [],
        "train": [
            _job("fits", tiny_model_dir, stop={"train_accuracy": 1.0, "every": 5}),
            # unreachable within 10 steps: the budget ends and the table says so
            _job("budget", tiny_model_dir, steps=10, stop={"train_loss": 1e-6, "every": 5}),
        ],
    }
    ctx = _context(study, tmp_path)
    run_training(ctx)
    table = ctx.read_table("training")

    accuracy = _rows(table, "fits", "subset_accuracy")
    assert list(accuracy["step"]) == list(range(0, int(accuracy["step"].max()) + 1, 5))
    stop = int(accuracy["step"].iloc[-1])
    assert 0 < stop < 300  # stopped early, at a check
    assert accuracy["value"].iloc[-1] == 1.0 and (accuracy["value"].iloc[:-1] < 1.0).all()
    met = _rows(table, "fits", "criterion_met")
    assert list(met["step"]) == [stop] and list(met["value"]) == [1.0]
    steps = _rows(table, "fits", "loss")
    assert steps.loc[steps["split"] == "train", "step"].max() == stop  # no step after the stop
    seconds = _rows(table, "fits", "seconds")["value"]
    assert seconds.iloc[0] == 0.0 and seconds.is_monotonic_increasing

    job_dir = ctx.run_dir / "checkpoints" / "fits"
    assert (job_dir / f"step-{stop}").is_dir() and not (job_dir / "step-300").exists()
    final = BertForSequenceClassification.from_pretrained(job_dir / "final").state_dict()
    last = BertForSequenceClassification.from_pretrained(job_dir / f"step-{stop}").state_dict()
    assert all(torch.equal(final[k], last[k]) for k in final)

    budget = _rows(table, "budget", "criterion_met")
    assert list(budget["step"]) == [10] and list(budget["value"]) == [0.0]
    assert (ctx.run_dir / "checkpoints" / "budget" / "step-10").is_dir()


def test_a_criterion_needs_a_threshold_and_holds_on_either() -> None:
    with pytest.raises(ValidationError, match="give train_accuracy, train_loss or both"):
        StopCriterion()
    either = StopCriterion(train_accuracy=0.99, train_loss=0.05)
    assert either.holds({"accuracy": 0.99, "loss": 0.3})
    assert either.holds({"accuracy": 0.5, "loss": 0.05})
    assert not either.holds({"accuracy": 0.98, "loss": 0.06})
    job = FinetuneJob(name="j", kind="finetune", model="m", task="sst2", steps=5, stop=either)
    assert job.stop is not None and job.stop.every == 10


def test_eval_on_save_false_scores_dev_only_at_eval_every_and_the_last_step_same_weights(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from probe.training.stage import run_training

    monkeypatch.setenv("PROBE_DATA_DIR", str(write_sst2(tmp_path / "data")))
    dense = {"steps": 12, "save_every": 2, "eval_every": 4}
    study = {
        "name": "t",
        "seed": 0,
        "figures": [],
        "train": [
            _job("every-save", tiny_model_dir, **dense),
            _job("eval-only", tiny_model_dir, **dense, eval_on_save=False),
        ],
    }
    ctx = _context(study, tmp_path)
    run_training(ctx)
    table = ctx.read_table("training")

    def dev_steps(job: str) -> list[int]:
        rows = _rows(table, job, "accuracy")
        return sorted(int(s) for s in rows.loc[rows["split"] == "dev", "step"])

    assert dev_steps("every-save") == [0, 2, 4, 6, 8, 10, 12]
    assert dev_steps("eval-only") == [0, 4, 8, 12]
    checkpoints = ctx.run_dir / "checkpoints"
    for step in (2, 6, 10):  # still saved, only not scored
        assert (checkpoints / "eval-only" / f"step-{step}").is_dir()
    # scoring dev draws no randomness: both jobs end with the same weights
    a = BertForSequenceClassification.from_pretrained(checkpoints / "every-save" / "final")
    b = BertForSequenceClassification.from_pretrained(checkpoints / "eval-only" / "final")
    b_state = b.state_dict()
    assert all(torch.equal(t, b_state[name]) for name, t in a.state_dict().items())
