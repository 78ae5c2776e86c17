"""Checks of the ``train`` section that need model configs, tokenizers or corpora (no model loads).

Run by :func:`probe.validate.check_study` with every other check of the study; each problem is
returned, not raised, so the user sees all of them at once.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from probe.errors import ProbeError
from probe.models import ModelSpec, load_config, load_tokenizer, resolve_model
from probe.study import Study
from probe.training.config import FinetuneJob, TrainSection, saved_steps

__all__ = ["check_train"]


def check_train(study: Study) -> list[str]:
    """Names, model specs, corpora and checkpoint references of every job."""
    from probe.data import DATASETS, normalize_split, read_documents
    from probe.data.check import check_split_readable, check_task_readable

    section = study.train
    assert section is not None
    problems: list[str] = []
    earlier: list[str] = []
    # Many jobs share a model and a task (an ablation's arms and seeds): check each once.
    checked: set[tuple[str, str]] = set()
    for i, job in enumerate(section.jobs):
        where = f"train.jobs.{i} ({job.name})"
        try:
            if isinstance(job, FinetuneJob):
                if ModelSpec.parse(job.model).trained_job is not None:
                    problems += _check_trained_ref(job.model, earlier, where + ".model", section)
                elif ("model", job.model) not in checked:
                    load_config(resolve_model(job.model))
                    checked.add(("model", job.model))
                if ("task", job.task) not in checked:
                    check_task_readable(job.task)
                    checked.add(("task", job.task))
                if job.test and job.task == "sst2":
                    problems.append(
                        f"{where}.test: SST-2's test split has no labels; set test: false"
                    )
            else:
                if job.tokenizer != "train":
                    load_tokenizer(resolve_model(job.tokenizer))
                if not Path(job.corpus).exists():
                    if job.corpus not in DATASETS:
                        near = difflib.get_close_matches(job.corpus, list(DATASETS), n=1)
                        hint = f"did you mean {near[0]!r}?" if near else "give a .txt path"
                        problems.append(
                            f"{where}.corpus: {job.corpus!r} is neither a file, "
                            f"a folder nor a dataset; {hint}"
                        )
                    else:
                        splits = DATASETS[job.corpus].splits
                        for key in ("train_split", "eval_split"):
                            if normalize_split(getattr(job, key)) not in splits:
                                problems.append(
                                    f"{where}.{key}: {job.corpus} has no split "
                                    f"{getattr(job, key)!r}; it has {', '.join(splits)}"
                                )
                            else:
                                check_split_readable(job.corpus, getattr(job, key))
                else:
                    read_documents(job.corpus)  # FILE:LINE for bad bytes; empty files
        except ProbeError as exc:
            problems.append(f"{where}: {exc}")
        earlier.append(job.name)
    for entry in study.models:
        if ModelSpec.parse(entry.spec).trained_job is not None:
            problems += _check_trained_ref(entry.spec, earlier, f"models ({entry.label})", section)
    return problems


def _check_trained_ref(
    spec: str, earlier: list[str], where: str, section: TrainSection
) -> list[str]:
    """Problems with a ``trained:<job>[@<checkpoint>]`` reference (empty if it is fine)."""
    parsed = ModelSpec.parse(spec).base
    job_name, checkpoint = parsed.target, parsed.checkpoint or ""
    if job_name not in earlier:
        near = difflib.get_close_matches(job_name, earlier, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"jobs before it: {earlier or 'none'}"
        return [f"{where}: {spec!r} names no earlier training job {job_name!r}; {hint}"]
    if checkpoint in ("", "final", "last"):
        return []
    if not checkpoint.isdigit():
        return [f"{where}: {spec!r}: checkpoint must be a step number, final or last"]
    job = section.job(job_name)
    if job.steps is None:
        return []  # the schedule depends on the data size; resolved when the stage runs
    saved = saved_steps(job, job.steps)
    if int(checkpoint) not in saved:
        return [
            f"{where}: {spec!r}: job {job_name!r} saves no step {checkpoint}; it saves "
            f"{saved} (add it to save_steps)"
        ]
    return []
