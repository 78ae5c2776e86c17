"""The ``train`` stage: run every job of the study's ``train`` section, in order.

For each job: skip it if ``checkpoints/<job>/final/`` exists (a resumed run), else resume from
its newest complete ``step-<N>/`` or start afresh; train; record the history. The stage writes
``results/training.parquet`` (tidy: ``model`` = job name, ``task``, ``split`` train/dev/test,
``metric``, ``value``, plus ``step``, ``epoch``, ``kind``, ``arm``: the setting a job is one
seed of, for ablations) after every checkpoint, so a crashed run still shows its curves; the
runner then draws one figure per task (``figures/training_<task>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from probe.rundir import RunContext
from probe.training.checkpoint import STATE_FILE, find_resume_point, load_state
from probe.training.config import FinetuneJob, PretrainJob
from probe.training.loop import train_job

__all__ = ["build_objective", "job_arm", "job_task", "run_training", "training_table"]


def job_task(job: PretrainJob | FinetuneJob) -> str:
    """The ``task`` column of a job's rows: ``mlm_nsp``/``mlm`` for pretraining, else its task."""
    if isinstance(job, PretrainJob):
        return "mlm_nsp" if job.nsp else "mlm"
    return job.task


def job_arm(job: PretrainJob | FinetuneJob) -> str:
    """The ``arm`` column: the setting a job is one seed of (its ``arm``, else its name)."""
    return getattr(job, "arm", None) or job.name


def build_objective(
    job: PretrainJob | FinetuneJob, *, seed: int, run_dir: Path, resume_from: Path | None = None
) -> Any:
    """Data, tokenizer and model of a job; a resumed pretraining job reuses its saved tokenizer."""
    if isinstance(job, PretrainJob):
        from probe.training.pretrain import build_pretrain

        tokenizer = None
        if resume_from is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(resume_from)
        return build_pretrain(job, seed=seed, tokenizer=tokenizer)
    from probe.training.finetune import build_finetune

    return build_finetune(job, seed=seed, run_dir=run_dir)


def training_table(
    histories: dict[str, tuple[PretrainJob | FinetuneJob, int, list[dict]]],
) -> pd.DataFrame:
    """Tidy rows of every job's history (``study`` is filled in by the writer)."""
    rows = []
    for name, (job, seed, history) in histories.items():
        for row in history:
            rows.append(
                {
                    "model": name,
                    "task": job_task(job),
                    "seed": seed,
                    "kind": job.kind,
                    "arm": job_arm(job),
                    "strategy": getattr(job, "strategy", None),
                    **row,
                }
            )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["step"] = pd.array(frame["step"], dtype="Int64")
        frame["epoch"] = frame["epoch"].astype(float)
    return frame


def _summary(ctx: RunContext, frame: pd.DataFrame) -> None:
    table = Table(
        "job", "task", "strategy", "trainable", "steps", "train loss", "dev", "baseline",
        "seconds", "tokens/s",
    )  # fmt: skip
    for name, rows in frame.groupby("model", sort=False):
        last = rows[rows["step"].notna()]
        final_step = int(last["step"].max()) if not last.empty else 0

        def value(
            split: str, metric: str, rows: pd.DataFrame = rows, at: int = final_step, fmt=".4g"
        ) -> str:
            hit = rows[
                (rows["split"] == split)
                & (rows["metric"] == metric)
                & ((rows["step"] == at) if at >= 0 else rows["step"].isna())
            ]
            return f"{hit['value'].iloc[-1]:{fmt}}" if not hit.empty else "-"

        task = rows["task"].iloc[0]
        if task.startswith("mlm"):
            dev = f"mlm {value('dev', 'mlm_loss')}, nsp acc {value('dev', 'nsp_accuracy')}"
            baseline = f"unigram H {value('train', 'unigram_entropy', at=-1)}"
        else:
            metric = {"stsb": "spearman"}.get(task, "f1" if task.startswith("ner") else "accuracy")
            dev = f"{metric} {value('dev', metric)}"
            baseline = f"majority {value('dev', 'majority_accuracy', at=-1)}"
        train = rows[(rows["split"] == "train") & (rows["metric"] == "loss")]
        train_loss = f"{train['value'].tail(10).mean():.4g}" if not train.empty else "-"
        strategy = rows["strategy"].iloc[0] if "strategy" in rows else None
        table.add_row(
            str(name),
            task,
            str(strategy) if isinstance(strategy, str) else "-",
            value("train", "trainable_parameters", at=-1, fmt=",.0f"),
            str(final_step),
            train_loss,
            dev,
            baseline,
            value("train", "train_seconds", at=-1, fmt=".1f"),
            value("train", "tokens_per_s", at=-1),
        )
    ctx.console.print(table)


def run_training(ctx: RunContext) -> None:
    """Run the study's training jobs (see module docstring)."""
    from accelerate import PartialState

    section = ctx.study.train
    assert section is not None  # the runner only calls this stage for studies with a train section
    # cpu= must match what the loop's Accelerator gets: the first call fixes the shared state.
    is_main = PartialState(cpu=ctx.device.type == "cpu").is_main_process
    histories: dict[str, tuple[PretrainJob | FinetuneJob, int, list[dict]]] = {}

    def publish() -> None:
        if is_main:
            ctx.write_table("training", training_table(histories))

    for job in section.jobs:
        seed = ctx.study.seed if job.seed is None else job.seed
        job_dir = ctx.run_dir / "checkpoints" / job.name
        final = job_dir / "final"
        if (final / STATE_FILE).exists():
            ctx.console.print(f"{job.name}: already trained ({final}), skipped")
            histories[job.name] = (job, seed, list(load_state(final)["history"]))
            continue
        resume_from = find_resume_point(job_dir)
        objective = build_objective(job, seed=seed, run_dir=ctx.run_dir, resume_from=resume_from)
        if isinstance(job, PretrainJob):
            ctx.console.print(
                f"{job.name}: {objective.n_examples} training pairs, {objective.n_train_tokens} "
                f"tokens, vocabulary {len(objective.tokenizer)}; unigram entropy "
                f"{objective.entropy:.3f} nats (the MLM loss of a context-free model)"
            )
        else:
            ctx.console.print(
                f"{job.name}: {objective.n_examples} training examples, model {job.model}, "
                f"strategy {job.strategy}, frozen {objective.frozen or 'nothing'}, "
                f"{objective.trainable_parameters:,} trainable parameters"
            )

        def on_publish(history: list[dict], job: Any = job, seed: int = seed) -> None:
            histories[job.name] = (job, seed, history)
            publish()

        train_job(
            job,
            objective,
            job_dir=job_dir,
            seed=seed,
            precision=ctx.study.precision,
            device=ctx.device,
            resume_from=resume_from,
            console=ctx.console if is_main else None,
            publish=on_publish,
        )
        publish()
        del objective
    if not is_main:
        return
    frame = ctx.read_table("training")
    _summary(ctx, frame)
