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
the runner draws their figures (:mod:`probe.figures.groups`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.cache import WordFeatures, sentences_digest
from probe.capture import capture_words
from probe.data import (
    TaskData,
    TaskSplit,
    file_sha256,
    load_probe_task,
    word_types,
)
from probe.errors import StudyError
from probe.models import Encoder, load_encoder
from probe.probes.baselines import MajorityClassBaseline
from probe.probes.config import ProbeSection
from probe.probes.control import ControlTask
from probe.probes.linear import LayerwiseLogisticRegression
from probe.probes.metrics import bootstrap_ci, macro_f1, semeval2010_official_f1
from probe.probes.spans import pair_features, span_features, word_features
from probe.probes.summaries import center_of_gravity, cumulative_mix_scores, expected_layer
from probe.probes.summary_rules import MIN_COG_GAIN_POINTS, center_of_gravity_is_meaningful
from probe.rundir import RunContext

__all__ = ["run_probes"]

# Bump when capture changes in a way that alters stored features.
CAPTURE_VERSION = 1
EVAL_SPLITS = ("dev", "test")


@cache
def _file_hash(path: Path) -> str:
    return file_sha256(path)


# --------------------------------------------------------------------------- features


def split_features(
    ctx: RunContext, encoder: Encoder, split: TaskSplit, layers: Sequence[int], label: str
) -> WordFeatures:
    """Word vectors of one split: from the cache, or captured now and cached."""
    capture = ctx.study.capture
    key = ctx.cache.key(
        version=CAPTURE_VERSION,
        model=encoder.fingerprint,
        data=_file_hash(split.source),
        sentences=sentences_digest(split.sentences),
        pooling=capture.pooling,
        layers=list(layers),
        max_length=capture.max_length,
        stride=capture.stride,
    )
    cached = ctx.cache.get(key)
    if cached is not None:
        ctx.console.print(
            f"  {label}: capture skipped, features cached ({cached.nbytes / 2**20:.0f} MiB, "
            f"{cached.path})"
        )
        return cached
    lengths = np.array([len(s) for s in split.sentences])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = time.perf_counter()
    with Progress(
        TextColumn(f"  {label}: capture"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("words"),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as bar:
        job = bar.add_task("capture", total=int(offsets[-1]))

        def fill(out: np.ndarray) -> None:
            _, plan = capture_words(
                encoder.model,
                encoder.tokenizer,
                split.sentences,
                layers=layers,
                pooling=capture.pooling,
                batch_tokens=capture.batch_tokens,
                max_length=capture.max_length,
                stride=capture.stride,
                precision=ctx.study.precision,
                out=out,
                progress=lambda n: bar.advance(job, n),
            )
            fill.plan = plan  # type: ignore[attr-defined]

        entry = ctx.cache.put(
            key,
            shape=(len(layers), int(offsets[-1]), encoder.d_model),
            offsets=offsets,
            layers=layers,
            fill=fill,
            meta={
                "model": encoder.source.spec,
                "source": str(split.source),
                "pooling": capture.pooling,
            },
        )
    plan = fill.plan  # type: ignore[attr-defined]
    ctx.console.print(
        f"  {label}: captured {len(split.sentences)} sentences, {int(offsets[-1])} words in "
        f"{time.perf_counter() - start:.1f} s; padding {plan.padding_share_unsorted:.0%} -> "
        f"{plan.padding_share:.0%} with length bucketing; cache {entry.nbytes / 2**20:.0f} MiB"
    )
    return entry


def one_word_spans(task: TaskData) -> bool:
    """Whether every span of every target of ``task`` (all splits) is a single word."""
    return all(
        bool(np.all(split.targets[:, 2::2] - split.targets[:, 1::2] == 1))
        for split in task.splits.values()
    )


def probe_inputs(
    task: TaskData, split: TaskSplit, feats: WordFeatures, section: ProbeSection
) -> np.ndarray:
    """Probe inputs of shape (n_layers, n_targets, D) for the task's kind."""
    if task.kind == "word":
        return word_features(feats.features, feats.offsets, split.targets)
    how = tuple(section.span.repr)
    if one_word_spans(task):
        # Dependency arcs join two words: a one-word span's mean and endpoints are the same
        # vector, so [mean, start, end] would only triple the width (and the fit time) without
        # adding information. Decided per task, so every split gets the same width.
        how = ("mean",)
    if task.kind == "span":
        return span_features(feats.features, feats.offsets, split.targets, how=how)
    return pair_features(
        feats.features, feats.offsets, split.targets, how=how, product=section.span.pair_product
    )


# --------------------------------------------------------------------------- scoring


def _metrics(task: TaskData, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer scores of predictions ``y_pred`` (n_layers, n) against ``y_true`` (n,)."""
    scores = {"accuracy": (y_pred == y_true[None]).mean(axis=1)}
    if task.kind == "span":
        scores["macro_f1"] = np.array([macro_f1(y_true, p) for p in y_pred])
    if task.name == "semeval_relations":
        names = np.asarray(task.label_names)
        scores["official_f1"] = np.array(
            [semeval2010_official_f1(names[y_true], names[p]) for p in y_pred]
        )
    return scores


def _rows_for(
    task_data: TaskData,
    split: TaskSplit,
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    layers: Sequence[int],
    n_boot: int,
    seed: int,
    **fields: object,
) -> list[dict]:
    rows = []
    groups = split.targets[:, 0]  # resample sentences, not words: words of a sentence correlate
    for metric, values in _metrics(task_data, y_true, y_pred).items():
        low = high = np.full(len(layers), np.nan)
        if n_boot and name == "test" and metric == "accuracy":
            low, high = bootstrap_ci(
                y_true, y_pred, "accuracy", n_boot=n_boot, seed=seed, groups=groups
            )
        for i, layer in enumerate(layers):
            rows.append(
                {
                    "layer": layer,
                    "split": name,
                    "metric": metric,
                    "value": values[i],
                    "ci_low": low[i],
                    "ci_high": high[i],
                    "seed": seed,
                    **fields,
                }
            )
    return rows


def _fit_probe(
    ctx: RunContext,
    label: str,
    kwargs: dict,
    X: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
) -> LayerwiseLogisticRegression:
    """Fit one all-layer probe on train, C chosen on dev, behind a progress bar."""
    probe = LayerwiseLogisticRegression(**kwargs)
    n_fits = X["train"].shape[0] * len(np.atleast_1d(probe.Cs))
    with Progress(
        TextColumn(f"  {label}: fit layers x C"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as bar:
        job = bar.add_task("fit", total=n_fits)
        start = time.perf_counter()
        probe.fit(
            X["train"], y["train"], X["dev"], y["dev"], progress=lambda n: bar.advance(job, n)
        )
    ctx.console.print(
        f"  {label}: fitted {n_fits} (layer, C) pairs on {len(y['train'])} examples in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return probe


def _probe_kwargs(ctx: RunContext, task: TaskData) -> dict:
    section = ctx.study.probe
    assert section is not None
    kwargs = {
        "n_classes": len(task.label_names),
        "standardize": section.standardize,
        "device": ctx.device,
    }
    if section.C is not None:
        kwargs["Cs"] = tuple(section.C)
    return kwargs


def fit_task_probe(
    ctx: RunContext, task: TaskData, X: dict[str, np.ndarray]
) -> LayerwiseLogisticRegression:
    """The all-layer probe of ``task``'s own labels (C chosen on dev)."""
    y = {s: task.splits[s].labels for s in X}
    return _fit_probe(ctx, f"{task.name} probe", _probe_kwargs(ctx, task), X, y)


def probe_task(
    ctx: RunContext,
    task: TaskData,
    X: dict[str, np.ndarray],
    layers: Sequence[int],
    seed: int,
    model_label: str,
    probe: LayerwiseLogisticRegression,
) -> list[dict]:
    """Score the task probe and fit the control and majority probes for one seed; tidy rows.

    ``probe`` is the task probe from :func:`fit_task_probe` on these features. That fit does not
    depend on the seed (a convex objective solved from zero weights), so it is fitted once for
    all seeds; only the control task, the bootstrap and the mix subsample vary by seed.
    """
    section = ctx.study.probe
    assert section is not None
    y = {s: task.splits[s].labels for s in X}
    types = {s: word_types(task.splits[s]) for s in X}
    kwargs = _probe_kwargs(ctx, task)
    common = {"model": model_label, "task": task.name}
    rows: list[dict] = []

    task_pred = {s: probe.predict(X[s]) for s in EVAL_SPLITS}
    for s in EVAL_SPLITS:
        rows += _rows_for(
            task,
            task.splits[s],
            s,
            y[s],
            task_pred[s],
            layers,
            section.bootstrap,
            seed,
            probe="linear",
            control="task",
            **common,
        )
    for i, layer in enumerate(layers):
        rows.append(
            {
                "layer": layer,
                "split": "dev",
                "metric": "C",
                "value": probe.C_[i],
                "seed": seed,
                "probe": "linear",
                "control": "task",
                **common,
            }
        )

    if section.control:
        control = ControlTask(seed=seed).fit(types["train"], y["train"])
        y_control = {s: control.transform(types[s]) for s in X}
        control_probe = _fit_probe(ctx, f"{task.name} control", kwargs, X, y_control)
        for s in EVAL_SPLITS:
            control_pred = control_probe.predict(X[s])
            control_acc = (control_pred == y_control[s][None]).mean(axis=1)
            task_acc = (task_pred[s] == y[s][None]).mean(axis=1)
            for i, layer in enumerate(layers):
                rows.append(
                    {
                        "layer": layer,
                        "split": s,
                        "metric": "accuracy",
                        "value": control_acc[i],
                        "seed": seed,
                        "probe": "linear",
                        "control": "control",
                        **common,
                    }
                )
                rows.append(
                    {
                        "layer": layer,
                        "split": s,
                        "metric": "selectivity",
                        "value": task_acc[i] - control_acc[i],
                        "seed": seed,
                        "probe": "linear",
                        "control": "task",
                        **common,
                    }
                )

    majority = MajorityClassBaseline().fit(X["train"][0], y["train"])
    for s in EVAL_SPLITS:
        rows.append(
            {
                "layer": pd.NA,
                "split": s,
                "metric": "accuracy",
                "value": majority.score(X[s][0], y[s]),
                "seed": seed,
                "probe": "majority",
                "control": "task",
                **common,
            }
        )
    return rows


def layer_summaries(
    ctx: RunContext,
    task: TaskData,
    X: dict[str, np.ndarray],
    layers: Sequence[int],
    seed: int,
    model_label: str,
) -> list[dict]:
    """Scalar-mix weights, expected layer, cumulative mix-k scores and center of gravity.

    Tenney et al. (2019) train mix-k on layers 0..k for every k; the mix over all layers is the
    last of these, so its weights give the expected layer without another fit. Scores are on
    test (Tenney et al. report dev). The mix probes train by minibatch Adam, so the train split is
    subsampled to ``mix_max_train`` targets (seeded) to keep the summaries CPU-sized.
    """
    section = ctx.study.probe
    assert section is not None
    y_train = task.splits["train"].labels
    keep = np.arange(len(y_train))
    if section.mix_max_train is not None and len(keep) > section.mix_max_train:
        keep = np.sort(
            np.random.default_rng(seed).choice(keep, section.mix_max_train, replace=False)
        )
    scores, probes = cumulative_mix_scores(
        X["train"][:, keep],
        y_train[keep],
        X["dev"],
        task.splits["dev"].labels,
        X["test"],
        task.splits["test"].labels,
        return_probes=True,
        seed=seed,
    )
    weights = probes[-1].layer_weights_
    deltas = np.diff(scores)
    common = {"model": model_label, "task": task.name, "seed": seed, "control": "task"}
    rows = [
        {
            "layer": pd.NA,
            "split": "test",
            "metric": "center_of_gravity",
            "probe": "mix-k",
            "value": center_of_gravity(scores),
            **common,
        },
        {
            "layer": pd.NA,
            "split": "test",
            "metric": "expected_layer",
            "probe": "mix",
            "value": expected_layer(weights),
            **common,
        },
    ]
    for i, layer in enumerate(layers):
        rows.append(
            {
                "layer": layer,
                "split": "test",
                "metric": "mix_weight",
                "probe": "mix",
                "value": weights[i],
                **common,
            }
        )
        rows.append(
            {
                "layer": layer,
                "split": "test",
                "metric": "accuracy",
                "probe": "mix-k",
                "value": scores[i],
                **common,
            }
        )
        if i:
            rows.append(
                {
                    "layer": layer,
                    "split": "test",
                    "metric": "delta",
                    "probe": "mix-k",
                    "value": deltas[i - 1],
                    **common,
                }
            )
    return rows


# --------------------------------------------------------------------------- stage


def _resolve_layers(requested: str | list[int], n_layers: int, label: str) -> list[int]:
    if requested == "all":
        return list(range(n_layers + 1))
    bad = [layer for layer in requested if layer > n_layers]
    if bad:
        raise StudyError(f"capture.layers: {bad} out of range 0..{n_layers} for model {label}")
    return sorted(set(requested))


def layer_tables(frame: pd.DataFrame) -> list[Table]:
    """Per task: test accuracy (selectivity) x 100 at every layer, one row per model.

    With checkpoints as models this is the table of how a property emerges during training.
    """
    test = frame[(frame.probe == "linear") & (frame.control == "task") & (frame.split == "test")]
    tables = []
    for task, rows in test.groupby("task", sort=False):
        means = rows.groupby(["model", "metric", "layer"], sort=False).value.mean()
        layers = sorted(rows.layer.dropna().astype(int).unique())
        table = Table(
            "model",
            *(str(layer) for layer in layers),
            title=f"{task}: test accuracy (selectivity) by layer, x 100, mean over seeds",
        )
        for model in rows.model.drop_duplicates():
            cells = []
            for layer in layers:
                acc = means.get((model, "accuracy", layer))
                sel = means.get((model, "selectivity", layer))
                cell = "-" if acc is None else f"{100 * acc:.1f}"
                cells.append(cell if sel is None else f"{cell} ({100 * sel:.1f})")
            table.add_row(str(model), *cells)
        tables.append(table)
    return tables


def summary_table(frame: pd.DataFrame) -> Table:
    """Best layer (chosen on dev) per model and task, with its test accuracy and selectivity."""
    table = Table(
        "model",
        "task",
        "best layer",
        "test acc",
        "95% CI",
        "selectivity",
        "control",
        "majority",
        title="probe summary (best layer chosen on dev, mean over seeds)",
    )
    linear = frame[(frame.probe == "linear") & (frame.control == "task")]
    for (model, task), group in linear.groupby(["model", "task"], sort=False):
        dev = group[(group.split == "dev") & (group.metric == "accuracy")]
        best = int(dev.groupby("layer").value.mean().idxmax())
        at_best = group[(group.layer == best) & (group.split == "test")]
        acc = at_best[at_best.metric == "accuracy"]
        sel = at_best[at_best.metric == "selectivity"].value.mean()
        ctrl = frame[
            (frame.model == model)
            & (frame.task == task)
            & (frame.control == "control")
            & (frame.split == "test")
            & (frame.layer == best)
        ].value.mean()
        maj = frame[
            (frame.model == model)
            & (frame.task == task)
            & (frame.probe == "majority")
            & (frame.split == "test")
        ].value.mean()
        table.add_row(
            str(model),
            str(task),
            str(best),
            f"{100 * acc.value.mean():.2f}",
            f"[{100 * acc.ci_low.mean():.1f}, {100 * acc.ci_high.mean():.1f}]",
            f"{100 * sel:.2f}",
            f"{100 * ctrl:.2f}",
            f"{100 * maj:.2f}",
        )
    return table


def centre_of_gravity_table(frame: pd.DataFrame) -> Table:
    """Tasks sorted by center of gravity, with expected layer (means over seeds).

    The center of gravity divides by the total gain ``mix-L - mix-0``; when that is under
    ``MIN_COG_GAIN_POINTS`` points it is shown in parentheses and sorted last, because it can then
    fall anywhere, even outside ``0..L``.
    """
    table = Table(
        "model",
        "task",
        "center of gravity",
        "expected layer",
        "mix-0 test acc",
        "mix-L test acc",
        "gain (pt)",
        title="layer summaries (Tenney et al. 2019)",
        caption=f"center of gravity in parentheses: layers 1..L add under {MIN_COG_GAIN_POINTS:g} "
        "point, so it is not meaningful",
    )
    scalar = frame[frame.layer.isna()].pivot_table(
        index=["model", "task"], columns="metric", values="value", aggfunc="mean"
    )
    mix_k = frame[(frame.metric == "accuracy") & (frame.probe == "mix-k")]
    first = mix_k[mix_k.layer == mix_k.layer.min()].groupby(["model", "task"]).value.mean()
    last = mix_k[mix_k.layer == mix_k.layer.max()].groupby(["model", "task"]).value.mean()
    gain = last - first
    scalar = scalar.assign(stable=center_of_gravity_is_meaningful(gain.reindex(scalar.index)))
    ordered = scalar.sort_values(["stable", "center_of_gravity"], ascending=[False, True])
    for (model, task), row in ordered.iterrows():
        cog = f"{row.center_of_gravity:.2f}"
        table.add_row(
            str(model),
            str(task),
            cog if row.stable else f"({cog})",
            f"{row.expected_layer:.2f}",
            f"{100 * first[(model, task)]:.2f}",
            f"{100 * last[(model, task)]:.2f}",
            f"{100 * gain[(model, task)]:.2f}",
        )
    return table


def run_probes(ctx: RunContext) -> None:
    """Run the probe stage of ``ctx.study`` (see module docstring)."""
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
    rows: list[dict] = []
    summary_rows: list[dict] = []
    for entry in ctx.study.models:
        ctx.console.print(f"[bold]model {entry.label}[/bold] ({entry.spec})")
        encoder = load_encoder(
            entry.spec, seed=ctx.study.seed, device=ctx.device, run_dir=ctx.run_dir
        )
        layers = _resolve_layers(ctx.study.capture.layers, encoder.n_layers, entry.label)
        checkpoint = entry.spec.rpartition("@")[2] if "@" in entry.spec else None
        for task in tasks.values():
            X = {}
            for split_name, split in task.splits.items():
                feats = split_features(ctx, encoder, split, layers, f"{task.name}/{split_name}")
                X[split_name] = probe_inputs(task, split, feats, section)
            start = time.perf_counter()
            task_probe = fit_task_probe(ctx, task, X)
            for seed in section.seeds:
                rows += [
                    {**row, "checkpoint": checkpoint}
                    for row in probe_task(ctx, task, X, layers, seed, entry.label, task_probe)
                ]
            ctx.console.print(
                f"  {task.name}: probes fitted on {len(layers)} layers x {len(section.seeds)} "
                f"seed(s) in {time.perf_counter() - start:.1f} s"
            )
            if section.mix:
                if layers != list(range(len(layers))):
                    raise StudyError(
                        "probe.mix needs capture.layers: all (layer summaries mix layers 0..k)"
                    )
                start = time.perf_counter()
                for seed in section.seeds:
                    summary_rows += [
                        {**row, "checkpoint": checkpoint}
                        for row in layer_summaries(ctx, task, X, layers, seed, entry.label)
                    ]
                ctx.console.print(
                    f"  {task.name}: layer summaries (scalar mix, mix-k) in "
                    f"{time.perf_counter() - start:.1f} s"
                )
        del encoder
    frame = pd.DataFrame(rows)
    ctx.write_table("probe", frame)
    for table in layer_tables(frame):
        ctx.console.print(table)
    ctx.console.print(summary_table(frame))
    if summary_rows:
        ctx.write_table("probe_summary", pd.DataFrame(summary_rows))
        ctx.console.print(centre_of_gravity_table(pd.DataFrame(summary_rows)))
