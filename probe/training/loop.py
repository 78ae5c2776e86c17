"""The training loop shared by pretraining and fine-tuning, on top of ``accelerate``.

One loop, readable in one sitting (after nanoGPT): small helpers that pick a step's examples, then
``evaluate/checkpoint -> forward/backward with accumulation -> clip/step -> log``. What differs
between pretraining and fine-tuning lives in an *objective* object
(:class:`probe.training.pretrain.PretrainObjective`,
:class:`probe.training.finetune.FinetuneObjective`) with this interface::

    task, main_metric, greater_is_better, n_examples   # n_examples: examples per epoch
    model, tokenizer        # what checkpoints save (an HF PreTrainedModel and its tokenizer)
    module                  # what is trained: the model, or a loss wrapper around it
    head_prefixes           # parameter-name prefixes that get head_lr
    find_unused_parameters  # whether data-parallel training must expect unused parameters
    batch(examples, generator) -> dict of CPU tensors     # examples: [(epoch, index), ...]
    n_tokens(batch) -> tensor                             # non-padding tokens, for throughput
    loss(module, batch) -> {"loss": ..., other parts}     # scalars
    evaluate(module, device, split="dev") -> {metric: float}
    extra_evaluations(module, device)   # optional: [{"split", "metric", "value"}] at each eval
    final_splits            # optional: splits scored once after the last step (e.g. test)
    baseline_rows() -> [{"split", "metric", "value"}]     # constant reference lines
    lengths                 # optional: tokens per training example, for group_by_length

Reproducibility: ``batch_size`` is the number of sequences per optimizer step over all processes
and micro-batches, so one study file means the same optimisation on 1 CPU or 8 GPUs. The
examples of step ``s`` are positions ``s * batch_size ...`` of an endless stream that visits a
seeded permutation per epoch, and masking randomness comes from a generator seeded by
(seed, step, micro-batch, process). Dropout uses the global torch RNG, saved and restored with
every checkpoint. Hence a job resumed from ``step-k`` takes exactly the steps an uninterrupted
run takes (bit-identical on CPU).

Distribution is ``accelerate``'s: ``accelerate launch -m probe run STUDY.yaml`` gives
data-parallel training (gradient all-reduce, mixed precision, GradScaler for fp16); a plain run
is a single process. Only the main process writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from rich.console import Console
from transformers import AutoConfig

from probe.errors import StudyError
from probe.runtime import mixed_precision, seed_everything
from probe.training.checkpoint import (
    architecture,
    check_architecture,
    get_rng_state,
    load_state,
    prune_optimizer_states,
    quiet_progress,
    save_checkpoint,
    save_final,
    set_rng_state,
)
from probe.training.config import RESUMABLE_FIELDS, FinetuneJob, PretrainJob, saved_steps
from probe.training.optim import build_optimizer, warmup_steps

__all__ = ["accelerator_for", "mixed_precision", "total_steps", "train_job"]

_PERMUTATION_TAG = 0x5EED
_MASKING_TAG = 0x3A5C


def accelerator_for(precision: str, device: torch.device, find_unused_parameters: bool = False):
    """An ``accelerate.Accelerator`` for one job (all jobs of a process share one precision)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    return Accelerator(
        cpu=device.type == "cpu",
        mixed_precision=mixed_precision(precision, device),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)
        ],
    )


def total_steps(job: PretrainJob | FinetuneJob, n_examples: int) -> int:
    """Optimizer steps of a job: ``steps``, or ``epochs`` over ``n_examples`` (rounded up)."""
    if job.steps is not None:
        return job.steps
    return max(1, math.ceil(job.epochs * n_examples / job.batch_size))


def _derived_seed(*parts: int) -> int:
    return int(
        np.random.SeedSequence([p % 2**63 for p in parts]).generate_state(1, np.uint64)[0] % 2**63
    )


class _ExampleStream:
    """Maps a position in the endless example stream to ``(epoch, index)``, seeded per epoch.

    With ``lengths`` and ``group`` (``group_by_length``), each run of ``group`` examples of an
    epoch's permutation is sorted by length, longest first (as transformers'
    ``LengthGroupedSampler``): consecutive examples, hence a batch, have similar lengths and
    little padding, while the order stays random at the scale of ``group``.
    """

    def __init__(
        self, n_examples: int, seed: int, lengths: np.ndarray | None = None, group: int = 0
    ):
        self.n = n_examples
        self.seed = seed
        self.lengths = lengths
        self.group = group
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def __call__(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.n)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch, _PERMUTATION_TAG])
            order = rng.permutation(self.n)
            if self.lengths is not None and self.group > 1:
                runs = [order[i : i + self.group] for i in range(0, self.n, self.group)]
                order = np.concatenate(
                    [r[np.argsort(-self.lengths[r], kind="stable")] for r in runs]
                )
            self._order = order
            self._epoch = epoch
        return epoch, int(self._order[offset])


def _job_config(job: PretrainJob | FinetuneJob) -> dict[str, Any]:
    return job.model_dump(mode="json")


def _check_same_job(saved: dict[str, Any], job: PretrainJob | FinetuneJob, where: str) -> None:
    current = _job_config(job)
    diffs = [
        f"{k}: {saved.get(k)!r} -> {current.get(k)!r}"
        for k in sorted(current)
        if k not in RESUMABLE_FIELDS and saved.get(k) != current.get(k)
    ]
    if diffs:
        raise StudyError(
            f"{where}: cannot resume, job {job.name!r} changed since the checkpoint "
            f"({'; '.join(diffs)}); restore it, or run without --resume to start afresh"
        )


def _restore(
    folder: Path, objective: Any, job: PretrainJob | FinetuneJob, seed: int
) -> dict[str, Any]:
    """Check that ``folder`` belongs to this job, load its weights; returns its training state."""
    state = load_state(folder, optimizer=True)
    check_architecture(
        architecture(AutoConfig.from_pretrained(folder)),
        architecture(objective.model.config),
        str(folder),
    )
    _check_same_job(state["job"], job, str(folder))
    if state["seed"] != seed:
        raise StudyError(
            f"{folder}: cannot resume, the job seed changed "
            f"({state['seed']} -> {seed}); restore the study seed"
        )
    with quiet_progress():
        loaded = type(objective.model).from_pretrained(folder)
    objective.model.load_state_dict(loaded.state_dict())
    return state


def train_job(
    job: PretrainJob | FinetuneJob,
    objective: Any,
    *,
    job_dir: Path,
    seed: int,
    precision: str = "auto",
    device: torch.device | str = "cpu",
    resume_from: Path | None = None,
    console: Console | None = None,
    publish: Callable[[list[dict[str, Any]]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Train one job to its last step, saving checkpoints into ``job_dir``.

    Parameters
    ----------
    job : the job's study section.
    objective : data, model and metrics of the job (module docstring).
    job_dir : ``<run>/checkpoints/<job>``; ``step-<N>/`` and ``final/`` are written here.
    seed : seeds data order, masking, dropout.
    precision : the study's precision (``auto``, ``fp32``, ``bf16``, ``fp16``).
    resume_from : a ``step-<N>`` folder to continue from (architecture and job must match).
    publish : called on the main process with the history so far after every checkpoint.
    on_step : called with the step number after every optimizer step (tests use it to
        simulate a crash).

    Returns
    -------
    list of dict
        The history: rows ``{step, epoch, split, metric, value}``; ``step`` is None for
        constant rows (baselines, throughput).
    """
    console = console or Console(quiet=True)
    device = torch.device(device)
    accelerator = accelerator_for(precision, device, objective.find_unused_parameters)
    world, rank = accelerator.num_processes, accelerator.process_index
    if job.batch_size % (job.grad_accum * world):
        raise StudyError(
            f"job {job.name!r}: batch_size {job.batch_size} is not divisible by grad_accum "
            f"({job.grad_accum}) x processes ({world}); batch_size counts sequences per step"
        )
    micro = job.batch_size // (job.grad_accum * world)
    n_steps = total_steps(job, objective.n_examples)
    save_at = set(saved_steps(job, n_steps))
    eval_every = job.eval_every
    optimizer, scheduler = build_optimizer(
        objective.module,
        lr=job.lr,
        weight_decay=job.weight_decay,
        betas=job.adam_betas,
        eps=job.adam_eps,
        total_steps=n_steps,
        n_warmup=warmup_steps(n_steps, job.warmup_ratio, job.warmup_steps),
        head_lr=getattr(job, "head_lr", None),
        head_prefixes=objective.head_prefixes,
    )

    # A row's epoch: how many passes over the training examples the model has seen.
    def epoch_of(step: int) -> float:
        return step * job.batch_size / objective.n_examples

    state = _restore(resume_from, objective, job, seed) if resume_from is not None else None

    module, optimizer = accelerator.prepare(objective.module, optimizer)
    if state is not None:
        optimizer.load_state_dict(state["optimizer_state"]["optimizer"])
        scheduler.load_state_dict(state["optimizer_state"]["scheduler"])
        if accelerator.scaler is not None and state["optimizer_state"].get("scaler"):
            accelerator.scaler.load_state_dict(state["optimizer_state"]["scaler"])
        step = int(state["step"])
        history: list[dict[str, Any]] = list(state["history"])
        best = state.get("best")
        rng_states = state["rng"]
        set_rng_state(rng_states[rank] if len(rng_states) == world else rng_states[0])
        console.print(f"{job.name}: resuming from {resume_from.name} (step {step}/{n_steps})")
    else:
        seed_everything(seed)
        step = 0
        history = [{"step": None, "epoch": None, **row} for row in objective.baseline_rows()]
        best = None

    lengths = getattr(objective, "lengths", None) if job.group_by_length else None
    stream = _ExampleStream(objective.n_examples, seed, lengths, group=50 * job.batch_size)
    stopwatch = {"eval": 0.0, "save": 0.0}
    pending: list[dict[str, Any]] = []

    def evaluate(at: int) -> None:
        nonlocal best
        start = time.perf_counter()
        metrics = objective.evaluate(accelerator.unwrap_model(module), accelerator.device)
        for name, value in metrics.items():
            history.append(
                {
                    "step": at,
                    "epoch": epoch_of(at),
                    "split": "dev",
                    "metric": name,
                    "value": float(value),
                }
            )
        # Optional: an objective's other fixed evaluation sets, each under its own split.
        extra = getattr(objective, "extra_evaluations", None)
        for row in extra(accelerator.unwrap_model(module), accelerator.device) if extra else ():
            history.append({"step": at, "epoch": epoch_of(at), **row})
        main = metrics.get(objective.main_metric)
        if main is not None:
            better = best is None or (
                main > best["value"] if objective.greater_is_better else main < best["value"]
            )
            if better:
                best = {"metric": objective.main_metric, "value": float(main), "step": at}
        if metrics:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            console.print(f"{job.name} step {at}/{n_steps}: dev {shown}")
        stopwatch["eval"] += time.perf_counter() - start

    def flush() -> None:
        # One host sync per flush, not per step: losses stay on the device until here.
        if not pending:
            return
        names = [k for k in pending[0] if k not in ("step", "lr")]
        values = torch.stack([torch.stack([p[k].float() for k in names]) for p in pending])
        values = accelerator.reduce(values, reduction="mean") if world > 1 else values
        for row, vals in zip(pending, values.tolist(), strict=True):
            at = row["step"]
            for name, value in zip(names, vals, strict=True):
                if name != "tokens":
                    history.append(
                        {
                            "step": at,
                            "epoch": epoch_of(at),
                            "split": "train",
                            "metric": name,
                            "value": value,
                        }
                    )
            history.append(
                {
                    "step": at,
                    "epoch": epoch_of(at),
                    "split": "train",
                    "metric": "lr",
                    "value": row["lr"],
                }
            )
        stopwatch["tokens"] = (
            stopwatch.get("tokens", 0.0) + float(values[:, names.index("tokens")].sum()) * world
        )
        pending.clear()

    def training_state(at: int, **extra: Any) -> dict:
        """What ``training_state.pt`` of the checkpoint at step ``at`` records."""
        return {
            "step": at,
            "job": _job_config(job),
            "seed": seed,
            "best": best,
            "architecture": architecture(objective.model.config),
            "world_size": world,
            "history": history,
            **extra,
        }

    def checkpoint(at: int) -> None:
        start = time.perf_counter()
        rng = gather_object([get_rng_state()])  # every process's RNG, for an exact resume
        if accelerator.is_main_process:
            train_state = training_state(at, rng=rng)
            optimizer_state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": accelerator.scaler.state_dict()
                if accelerator.scaler is not None
                else None,
            }
            # objective.model is the HF model itself (the prepared module wraps it, or is it)
            save_checkpoint(
                job_dir / f"step-{at}",
                model=objective.model,
                tokenizer=objective.tokenizer,
                state=train_state,
                optimizer_state=optimizer_state,
            )
            prune_optimizer_states(job_dir, job.keep_optimizer)
            if publish is not None:
                publish(history)
        accelerator.wait_for_everyone()
        stopwatch["save"] += time.perf_counter() - start

    if state is None:
        evaluate(0)
        checkpoint(0)

    loop_start = time.perf_counter()
    module.train()
    while step < n_steps:
        parts: dict[str, torch.Tensor] = {}
        for m in range(job.grad_accum):
            first = step * job.batch_size + (m * world + rank) * micro
            examples = [stream(p) for p in range(first, first + micro)]
            generator = torch.Generator().manual_seed(
                _derived_seed(seed, _MASKING_TAG, step, m, rank)
            )
            batch = objective.batch(examples, generator)
            n_tokens = objective.n_tokens(batch)
            batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
            last = m == job.grad_accum - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(module):
                out = objective.loss(module, batch)
                accelerator.backward(out["loss"] / job.grad_accum)
            for name, value in out.items():
                parts[name] = parts.get(name, 0.0) + value.detach() / job.grad_accum
            parts["tokens"] = parts.get("tokens", 0.0) + n_tokens.to(accelerator.device)
        if job.max_grad_norm is not None:
            parts["grad_norm"] = accelerator.clip_grad_norm_(module.parameters(), job.max_grad_norm)
        lr = scheduler.get_last_lr()[0]  # the rate this step used
        optimizer.step()
        if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: keep the schedule
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        pending.append({"step": step, "lr": lr, **parts})
        evaluate_now = step == n_steps or step in save_at or (eval_every and step % eval_every == 0)
        if evaluate_now or step % job.log_every == 0:
            flush()
        if evaluate_now:
            evaluate(step)
        if step in save_at:
            checkpoint(step)
        if on_step is not None:
            on_step(step)
    flush()

    train_seconds = time.perf_counter() - loop_start - stopwatch["eval"] - stopwatch["save"]
    for split in getattr(objective, "final_splits", ()):  # e.g. test: scored once, at the end
        metrics = objective.evaluate(accelerator.unwrap_model(module), accelerator.device, split)
        history.extend(
            {
                "step": n_steps,
                "epoch": epoch_of(n_steps),
                "split": split,
                "metric": name,
                "value": float(value),
            }
            for name, value in metrics.items()
        )
    if state is None or stopwatch.get("tokens"):
        tokens = stopwatch.get("tokens", 0.0)
        history.append(
            {
                "step": None,
                "epoch": None,
                "split": "train",
                "metric": "tokens_per_s",
                "value": tokens / max(train_seconds, 1e-9),
            }
        )
    if best is not None:
        history.append(
            {
                "step": best["step"],
                "epoch": epoch_of(best["step"]),
                "split": "dev",
                "metric": f"best_{best['metric']}",
                "value": best["value"],
            }
        )
    if accelerator.is_main_process:
        save_final(job_dir / f"step-{n_steps}", job_dir / "final", training_state(n_steps))
        if publish is not None:
            publish(history)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return history
