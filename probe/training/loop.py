"""The training loop shared by pretraining and fine-tuning, on top of ``accelerate``.

One loop, readable in one sitting (after nanoGPT): :func:`train_job` sets a job up, then runs
named steps over a small state (:class:`_JobState`): ``_forward_backward`` (micro-batches with
accumulation) -> ``_optimizer_step`` (clip, step, schedule) -> ``_after_step`` (log, evaluate,
checkpoint when due), and ``_finish`` (final splits, throughput, ``final/``). What differs
between pretraining and fine-tuning lives in an *objective*
(:class:`probe.training.objective.Objective`: data, model, loss and metrics), built by
:func:`probe.training.pretrain.build_pretrain` or :func:`probe.training.finetune.build_finetune`.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from rich.console import Console
from safetensors.torch import load_file
from torch import nn
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
from probe.training.objective import Objective
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
    folder: Path, objective: Objective, job: PretrainJob | FinetuneJob, seed: int
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
    if getattr(objective, "adaptation", None) is not None:
        # added modules (LoRA, adapters, scalar mix): the whole state, loaded strictly
        objective.model.load_state_dict(load_file(folder / "model.safetensors"))
        return state
    with quiet_progress():
        loaded = type(objective.model).from_pretrained(folder)
    objective.model.load_state_dict(loaded.state_dict())
    return state


@dataclass
class _JobState:
    """What the steps of one job share: its setup, and the progress that checkpoints record."""

    job: PretrainJob | FinetuneJob
    objective: Objective
    accelerator: Any
    module: nn.Module  # the prepared (possibly wrapped) objective.module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    stream: _ExampleStream
    job_dir: Path
    seed: int
    n_steps: int
    save_at: set[int]
    micro: int  # sequences per micro-batch per process
    console: Console
    publish: Callable[[list[dict[str, Any]]], None] | None
    resumed: bool = False
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)  # step losses not yet logged
    eval_seconds: float = 0.0
    save_seconds: float = 0.0
    loop_start: float = 0.0  # perf_counter() when the training loop started
    paused_before_loop: float = 0.0  # eval + save seconds spent before loop_start
    tokens: float = 0.0  # non-padding tokens trained on, over every process

    def training_seconds(self, now: float) -> float:
        """Seconds spent in the training loop until ``now``, evaluations and checkpoints not
        counted (those before the loop, at step 0, are not inside it either)."""
        paused = self.eval_seconds + self.save_seconds - self.paused_before_loop
        return now - self.loop_start - paused

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    def epoch_of(self, step: int) -> float:
        """How many passes over the training examples the model has seen at ``step``."""
        return step * self.job.batch_size / self.objective.n_examples

    def row(self, at: int | None, split: str, metric: str, value: float) -> dict[str, Any]:
        epoch = None if at is None else self.epoch_of(at)
        return {"step": at, "epoch": epoch, "split": split, "metric": metric, "value": value}


def _setup(
    job: PretrainJob | FinetuneJob,
    objective: Objective,
    *,
    job_dir: Path,
    seed: int,
    precision: str,
    device: torch.device,
    console: Console,
    publish: Callable[[list[dict[str, Any]]], None] | None,
) -> _JobState:
    """Accelerator, optimizer, schedule and example stream of a job (before any resume)."""
    accelerator = accelerator_for(precision, device, objective.find_unused_parameters)
    world = accelerator.num_processes
    if job.batch_size % (job.grad_accum * world):
        raise StudyError(
            f"job {job.name!r}: batch_size {job.batch_size} is not divisible by grad_accum "
            f"({job.grad_accum}) x processes ({world}); batch_size counts sequences per step"
        )
    n_steps = total_steps(job, objective.n_examples)
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
        layer_of=getattr(objective, "layer_of", None),
        layer_lr_decay=getattr(objective, "layer_lr_decay", None),
    )
    lengths = objective.lengths if job.group_by_length else None
    return _JobState(
        job=job,
        objective=objective,
        accelerator=accelerator,
        module=objective.module,
        optimizer=optimizer,
        scheduler=scheduler,
        stream=_ExampleStream(objective.n_examples, seed, lengths, group=50 * job.batch_size),
        job_dir=job_dir,
        seed=seed,
        n_steps=n_steps,
        save_at=set(saved_steps(job, n_steps)),
        micro=job.batch_size // (job.grad_accum * world),
        console=console,
        publish=publish,
    )


def _prepare(s: _JobState, resume_from: Path | None) -> None:
    """Load a resume point (weights, optimizer, RNG, history) or seed a fresh start."""
    saved = _restore(resume_from, s.objective, s.job, s.seed) if resume_from is not None else None
    s.module, s.optimizer = s.accelerator.prepare(s.objective.module, s.optimizer)
    if saved is None:
        seed_everything(s.seed)
        s.history = [{"step": None, "epoch": None, **r} for r in s.objective.baseline_rows()]
        return
    s.resumed = True
    s.optimizer.load_state_dict(saved["optimizer_state"]["optimizer"])
    s.scheduler.load_state_dict(saved["optimizer_state"]["scheduler"])
    scaler = s.accelerator.scaler
    if scaler is not None and saved["optimizer_state"].get("scaler"):
        scaler.load_state_dict(saved["optimizer_state"]["scaler"])
    s.step = int(saved["step"])
    s.history = list(saved["history"])
    s.best = saved.get("best")
    rng_states = saved["rng"]
    set_rng_state(rng_states[s.rank] if len(rng_states) == s.world else rng_states[0])
    s.console.print(f"{s.job.name}: resuming from {resume_from.name} (step {s.step}/{s.n_steps})")


def _evaluate(s: _JobState, at: int) -> None:
    """Dev metrics (and the objective's other sets) at step ``at``; track the best step."""
    start = time.perf_counter()
    model, device = s.accelerator.unwrap_model(s.module), s.accelerator.device
    metrics = s.objective.evaluate(model, device)
    s.history.extend(s.row(at, "dev", name, float(value)) for name, value in metrics.items())
    for row in s.objective.extra_evaluations(model, device):
        s.history.append({"step": at, "epoch": s.epoch_of(at), **row})
    main = metrics.get(s.objective.main_metric)
    if main is not None:
        better = s.best is None or (
            main > s.best["value"] if s.objective.greater_is_better else main < s.best["value"]
        )
        if better:
            s.best = {"metric": s.objective.main_metric, "value": float(main), "step": at}
    if metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        s.console.print(f"{s.job.name} step {at}/{s.n_steps}: dev {shown}")
    s.eval_seconds += time.perf_counter() - start


def _flush(s: _JobState) -> None:
    """Log the pending steps' losses: one host sync per flush, not per step."""
    if not s.pending:
        return
    names = [k for k in s.pending[0] if k not in ("step", "lr")]
    values = torch.stack([torch.stack([p[k].float() for k in names]) for p in s.pending])
    values = s.accelerator.reduce(values, reduction="mean") if s.world > 1 else values
    for pending, vals in zip(s.pending, values.tolist(), strict=True):
        at = pending["step"]
        for name, value in zip(names, vals, strict=True):
            if name != "tokens":
                s.history.append(s.row(at, "train", name, value))
        s.history.append(s.row(at, "train", "lr", pending["lr"]))
    s.tokens += float(values[:, names.index("tokens")].sum()) * s.world
    s.pending.clear()


def _training_state(s: _JobState, at: int, **extra: Any) -> dict[str, Any]:
    """What ``training_state.pt`` of the checkpoint at step ``at`` records."""
    return {
        "step": at,
        "job": _job_config(s.job),
        "seed": s.seed,
        "best": s.best,
        "architecture": architecture(s.objective.model.config),
        "world_size": s.world,
        "history": s.history,
        **extra,
    }


def _checkpoint(s: _JobState, at: int) -> None:
    """Save ``step-<at>/`` (weights, training state, optimizer) and publish the history."""
    start = time.perf_counter()
    rng = gather_object([get_rng_state()])  # every process's RNG, for an exact resume
    if s.accelerator.is_main_process:
        scaler = s.accelerator.scaler
        optimizer_state = {
            "optimizer": s.optimizer.state_dict(),
            "scheduler": s.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        # objective.model is the HF model itself (the prepared module wraps it, or is it)
        save_checkpoint(
            s.job_dir / f"step-{at}",
            model=s.objective.model,
            tokenizer=s.objective.tokenizer,
            state=_training_state(s, at, rng=rng),
            optimizer_state=optimizer_state,
            adaptation=getattr(s.objective, "adaptation", None),
        )
        prune_optimizer_states(s.job_dir, s.job.keep_optimizer)
        if s.publish is not None:
            s.publish(s.history)
    s.accelerator.wait_for_everyone()
    s.save_seconds += time.perf_counter() - start


def _forward_backward(s: _JobState) -> dict[str, torch.Tensor]:
    """Gradients of one optimizer step, accumulated over ``grad_accum`` micro-batches.

    Returns the step's loss parts (averaged over micro-batches) and its token count.
    """
    job, accelerator = s.job, s.accelerator
    parts: dict[str, torch.Tensor] = {}
    for m in range(job.grad_accum):
        first = s.step * job.batch_size + (m * s.world + s.rank) * s.micro
        examples = [s.stream(p) for p in range(first, first + s.micro)]
        generator = torch.Generator().manual_seed(
            _derived_seed(s.seed, _MASKING_TAG, s.step, m, s.rank)
        )
        batch = s.objective.batch(examples, generator)
        n_tokens = s.objective.n_tokens(batch)
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        last = m == job.grad_accum - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(s.module):
            out = s.objective.loss(s.module, batch)
            accelerator.backward(out["loss"] / job.grad_accum)
        for name, value in out.items():
            parts[name] = parts.get(name, 0.0) + value.detach() / job.grad_accum
        parts["tokens"] = parts.get("tokens", 0.0) + n_tokens.to(accelerator.device)
    return parts


def _optimizer_step(s: _JobState, parts: dict[str, torch.Tensor]) -> None:
    """Clip, step the optimizer and schedule, and queue the step's losses for logging."""
    if s.job.max_grad_norm is not None:
        parts["grad_norm"] = s.accelerator.clip_grad_norm_(
            s.module.parameters(), s.job.max_grad_norm
        )
    lr = s.scheduler.get_last_lr()[0]  # the rate this step used
    s.optimizer.step()
    if not s.accelerator.optimizer_step_was_skipped:  # fp16 overflow: keep the schedule
        s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    s.step += 1
    s.pending.append({"step": s.step, "lr": lr, **parts})


def _check_fit(s: _JobState) -> None:
    """Score the whole training subset when the job's ``stop`` criterion is due; stop if it holds.

    Rows (split ``train``): ``subset_<metric>`` (eval mode, no dropout, unlike the step losses)
    and ``seconds``, the training time so far (evaluations and checkpoints not counted); at the
    last step, ``criterion_met`` (1 or 0). Stopping makes this step the last one: it is
    evaluated and saved like the end of the budget.
    """
    criterion = getattr(s.job, "stop", None)
    if criterion is None or (s.step % criterion.every and s.step < s.n_steps):
        return
    start = time.perf_counter()
    trained = 0.0 if s.step == 0 else s.training_seconds(start)
    model = s.accelerator.unwrap_model(s.module)
    metrics = s.objective.evaluate(model, s.accelerator.device, "train")
    s.history.extend(s.row(s.step, "train", f"subset_{k}", float(v)) for k, v in metrics.items())
    s.history.append(s.row(s.step, "train", "seconds", trained))
    held = criterion.holds(metrics)
    if held and s.step < s.n_steps:
        s.console.print(f"{s.job.name}: stop criterion met at step {s.step}/{s.n_steps}")
        s.n_steps = s.step
        s.save_at.add(s.step)
    if s.step == s.n_steps:
        s.history.append(s.row(s.step, "train", "criterion_met", float(held)))
    s.eval_seconds += time.perf_counter() - start


def _after_step(s: _JobState) -> None:
    """Check the stop criterion; log, evaluate and checkpoint when the schedule says so."""
    _check_fit(s)
    step, eval_every = s.step, s.job.eval_every
    saved_now = step in s.save_at and s.job.eval_on_save
    evaluate_now = step == s.n_steps or saved_now or bool(eval_every and step % eval_every == 0)
    if evaluate_now or step % s.job.log_every == 0:
        _flush(s)
    if evaluate_now:
        _evaluate(s, step)
    if step in s.save_at:
        _checkpoint(s, step)


def _finish(s: _JobState, train_seconds: float) -> None:
    """Score the final splits, add throughput and best-step rows, save ``final/``."""
    model, device = s.accelerator.unwrap_model(s.module), s.accelerator.device
    for split in s.objective.final_splits:  # e.g. test: scored once, at the end
        metrics = s.objective.evaluate(model, device, split)
        s.history.extend(s.row(s.n_steps, split, k, float(v)) for k, v in metrics.items())
    if not s.resumed or s.tokens:
        s.history.append(s.row(None, "train", "tokens_per_s", s.tokens / max(train_seconds, 1e-9)))
        # training time of this process's loop (evaluations and checkpoints not counted)
        s.history.append(s.row(None, "train", "train_seconds", train_seconds))
    if s.best is not None:
        at = s.best["step"]
        s.history.append(s.row(at, "dev", f"best_{s.best['metric']}", s.best["value"]))
    if s.accelerator.is_main_process:
        save_final(
            s.job_dir / f"step-{s.n_steps}", s.job_dir / "final", _training_state(s, s.n_steps)
        )
        if s.publish is not None:
            s.publish(s.history)
    s.accelerator.wait_for_everyone()
    s.accelerator.free_memory()


def train_job(
    job: PretrainJob | FinetuneJob,
    objective: Objective,
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
    objective : data, model and metrics of the job (:class:`probe.training.objective.Objective`).
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
    s = _setup(
        job,
        objective,
        job_dir=job_dir,
        seed=seed,
        precision=precision,
        device=torch.device(device),
        console=console or Console(quiet=True),
        publish=publish,
    )
    _prepare(s, resume_from)
    if not s.resumed:
        _check_fit(s)
        _evaluate(s, 0)
        _checkpoint(s, 0)
    s.paused_before_loop = s.eval_seconds + s.save_seconds
    s.loop_start = time.perf_counter()
    s.module.train()
    while s.step < s.n_steps:
        _optimizer_step(s, _forward_backward(s))
        _after_step(s)
        if on_step is not None:
            on_step(s.step)
    _flush(s)
    _finish(s, s.training_seconds(time.perf_counter()))
    return s.history
