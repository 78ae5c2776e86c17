"""The ``probe`` stage: capture word features, fit linear probes on every layer, write the tables.

For every model of the study and every task of ``probe.tasks``:

1. word vectors of each split at every layer come from the activation cache, or are captured once
   (tasks on the same sentences, e.g. ``upos``/``xpos``/``deprel``, share one capture);
2. targets become probe inputs (words directly; spans by mean/endpoints; pairs by concatenation);
3. a :class:`~probe.probes.linear.LayerwiseLogisticRegression` is fitted on all layers at once, its
   L2 strength chosen on dev, for each seed; the control task (Hewitt & Liang 2019) and a
   majority-class baseline are scored the same way; selectivity = task - control accuracy;
4. optionally (``mix: true``) layer summaries: scalar-mix weights and expected layer, cumulative
   mix-k scores and the center of gravity (Tenney et al. 2019).

Results: ``results/probe.parquet`` (per layer), ``results/probe_summary.parquet`` (layer summaries);
the runner draws their figures (:mod:`probe.figures.groups`). This module only orchestrates:
features in :mod:`~probe.probes.features`, fits and rows in :mod:`~probe.probes.scoring`, the
console report in :mod:`~probe.probes.report`.
"""

from __future__ import annotations

import time

import pandas as pd

from probe.data import TaskData, load_probe_task
from probe.errors import StudyError
from probe.models import Encoder, ModelSpec, load_encoder
from probe.probes.features import one_word_spans, probe_inputs, split_features
from probe.probes.fit_cache import ProbeCache, array_digest
from probe.probes.fits import TaskInputs
from probe.probes.report import (
    centre_of_gravity_table,
    layer_orders_table,
    layer_tables,
    summary_table,
)
from probe.probes.scoring import (
    fit_task_probe,
    layer_summaries,
    probe_kwargs,
    probe_task,
    task_predictions,
)
from probe.rundir import RunContext

__all__ = ["INPUTS_VERSION", "load_model_entry", "run_probes"]

#: Bump when turning features into probe inputs (probe.probes.spans) changes its output: part of
#: every probe cache key.
INPUTS_VERSION = 1


def _resolve_layers(requested: str | list[int], n_layers: int, label: str) -> list[int]:
    if requested == "all":
        return list(range(n_layers + 1))
    bad = [layer for layer in requested if layer > n_layers]
    if bad:
        raise StudyError(f"capture.layers: {bad} out of range 0..{n_layers} for model {label}")
    return sorted(set(requested))


def _load_tasks(ctx: RunContext) -> dict[str, TaskData]:
    """Every task of the section, loaded (limits applied) and described on the console."""
    section = ctx.study.probe
    assert section is not None
    tasks = {
        name: load_probe_task(task, limit=dict(section.limit) or None, seed=ctx.study.seed)
        for name, task in zip(section.task_names, section.tasks, strict=True)
    }
    for task in tasks.values():
        sizes = ", ".join(f"{s} {len(sp.labels)}" for s, sp in task.splits.items())
        ctx.console.print(
            f"task {task.name}: {len(task.label_names)} labels; {sizes}"
            + (f" ({task.note})" if task.note else "")
            + (
                "; spans are single words: one vector each"
                if task.kind != "word" and one_word_spans(task)
                else ""
            )
        )
    return tasks


def _task_inputs(
    ctx: RunContext,
    encoder: Encoder,
    task: TaskData,
    layers: list[int],
    label: str,
    cache: ProbeCache,
) -> TaskInputs:
    """Probe inputs of every split of ``task`` and the digest that identifies them."""
    section = ctx.study.probe
    assert section is not None
    X, feature_keys = {}, {}
    for split_name, split in task.splits.items():
        with ctx.timed("features", model=label, task=task.name, split=split_name):
            feats = split_features(ctx, encoder, split, layers, f"{task.name}/{split_name}")
            X[split_name] = probe_inputs(task, split, feats, section)
        feature_keys[split_name] = feats.path.name  # the feature cache key of this split
    digest = cache.key(
        features=feature_keys,
        targets={s: array_digest(split.targets) for s, split in task.splits.items()},
        kind=task.kind,
        span=section.span.model_dump(mode="json"),
        inputs_version=INPUTS_VERSION,
    )
    return TaskInputs(task=task, X=X, digest=digest, model=label, cache=cache)


def _probe_one_task(ctx: RunContext, inputs: TaskInputs, layers: list[int]) -> tuple[list, ...]:
    """Rows of the ``probe``, ``probe_summary`` and ``mdl`` tables for one model and task."""
    section = ctx.study.probe
    assert section is not None
    task, X, label = inputs.task, inputs.X, inputs.model
    start = time.perf_counter()
    with ctx.timed("task probe", model=label, task=task.name):
        task_probe = fit_task_probe(ctx, inputs)
    with ctx.timed("task predictions", model=label, task=task.name):
        task_pred = task_predictions(task_probe, inputs)
    rows: list[dict] = []
    for seed in section.seeds:
        rows += probe_task(ctx, inputs, layers, seed, task_probe, task_pred)
    ctx.console.print(
        f"  {task.name}: probes on {len(layers)} layers x {len(section.seeds)} "
        f"seed(s) in {time.perf_counter() - start:.1f} s"
    )
    code_rows: list[dict] = []
    if section.mdl:
        from probe.probes.mdl_stage import mdl_rows

        for seed in section.seeds:
            with ctx.timed("mdl", model=label, task=task.name, seed=seed):
                code_rows += mdl_rows(ctx, task, X, layers, seed, label, probe_kwargs(ctx, task))
    summary_rows: list[dict] = []
    if section.mix:
        if layers != list(range(len(layers))):
            raise StudyError(
                "probe.mix needs capture.layers: all (layer summaries mix layers 0..k)"
            )
        start = time.perf_counter()
        for seed in section.seeds:
            with ctx.timed("layer summaries", model=label, task=task.name, seed=seed):
                summary_rows += layer_summaries(ctx, inputs, layers, seed)
        ctx.console.print(
            f"  {task.name}: layer summaries (scalar mix, mix-k) in "
            f"{time.perf_counter() - start:.1f} s"
        )
    return rows, summary_rows, code_rows


def load_model_entry(ctx: RunContext, entry) -> tuple[Encoder, list[int], str | None]:
    """``entry``'s encoder, the layers to capture from it, and its checkpoint label."""
    encoder = load_encoder(entry.spec, seed=ctx.study.seed, device=ctx.device, run_dir=ctx.run_dir)
    layers = _resolve_layers(ctx.study.capture.layers, encoder.n_layers, entry.label)
    return encoder, layers, ModelSpec.parse(entry.spec).checkpoint_label


def run_probes(ctx: RunContext) -> None:
    """Run the probe stage of ``ctx.study`` (see module docstring)."""
    tasks = _load_tasks(ctx)
    if ctx.study.probe.mdl:  # before any model loads: a late failure would waste the capture
        from probe.probes.mdl_stage import check_mdl_sentences

        check_mdl_sentences(list(tasks.values()))
    rows: list[dict] = []
    summary_rows: list[dict] = []
    code_rows: list[dict] = []
    cache = ProbeCache(ctx.cache.root, warn=ctx.cache.warn)
    for entry in ctx.study.models:
        ctx.console.print(f"[bold]model {entry.label}[/bold] ({entry.spec})")
        encoder, layers, checkpoint = load_model_entry(ctx, entry)
        for task in tasks.values():
            inputs = _task_inputs(ctx, encoder, task, layers, entry.label, cache)
            task_rows, task_summary, task_code = _probe_one_task(ctx, inputs, layers)
            del inputs  # one task's inputs in memory at a time
            rows += [{**row, "checkpoint": checkpoint} for row in task_rows]
            summary_rows += [{**row, "checkpoint": checkpoint} for row in task_summary]
            code_rows += [{**row, "checkpoint": checkpoint} for row in task_code]
        del encoder
    ctx.console.print(
        f"probe cache: {len(cache.reused)} fit(s) reused, {len(cache.stored)} fitted and stored "
        f"({cache.root / 'probes'})"
    )
    frame = pd.DataFrame(rows)
    ctx.write_table("probe", frame)
    for table in layer_tables(frame):
        ctx.console.print(table)
    ctx.console.print(summary_table(frame))
    if code_rows:
        from probe.probes.mdl_stage import mdl_tables

        ctx.write_table("mdl", pd.DataFrame(code_rows))
        for table in mdl_tables(ctx.read_table("mdl"), frame):
            ctx.console.print(table)
    if summary_rows:
        ctx.write_table("probe_summary", pd.DataFrame(summary_rows))
        summary = pd.DataFrame(summary_rows)
        ctx.console.print(centre_of_gravity_table(summary))
        orders = layer_orders_table(summary)
        if orders is not None:
            ctx.console.print(orders)
