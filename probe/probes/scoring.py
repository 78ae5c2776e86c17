"""Scoring of the probe stage: fit the layer-wise probes of one task and turn them into result rows.

For one task's probe inputs: the task probe (C chosen on dev, once for all seeds), the control
task (Hewitt & Liang 2019) and the majority baseline per seed, scored on dev and test with
bootstrap intervals; and, with ``probe.mix``, the layer summaries of Tenney et al. (2019). Rows
are built with the pinned schemas of :mod:`probe.schemas` (``probe`` and ``probe_summary``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probe.data import TaskData, TaskSplit, word_types
from probe.probes.baselines import MajorityClassBaseline
from probe.probes.control import ControlTask
from probe.probes.fits import TaskInputs, cached_layerwise_probe, cached_mix_summary
from probe.probes.linear import LayerwiseLogisticRegression
from probe.probes.metrics import bootstrap_ci, macro_f1, semeval2010_official_f1
from probe.probes.summaries import center_of_gravity, expected_layer
from probe.rundir import RunContext
from probe.schemas import SCHEMAS

__all__ = [
    "EVAL_SPLITS",
    "fit_task_probe",
    "layer_summaries",
    "probe_kwargs",
    "probe_task",
    "task_predictions",
]

EVAL_SPLITS = ("dev", "test")
PROBE = SCHEMAS["probe"]
SUMMARY = SCHEMAS["probe_summary"]


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
                PROBE.row(
                    layer=layer,
                    split=name,
                    metric=metric,
                    value=values[i],
                    ci_low=low[i],
                    ci_high=high[i],
                    seed=seed,
                    **fields,
                )
            )
    return rows


def probe_kwargs(ctx: RunContext, task: TaskData) -> dict:
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


def fit_task_probe(ctx: RunContext, inputs: TaskInputs) -> LayerwiseLogisticRegression:
    """The all-layer probe of the task's own labels (C chosen on dev), fitted or reused."""
    task = inputs.task
    y = {s: task.splits[s].labels for s in inputs.X}
    return cached_layerwise_probe(ctx, f"{task.name} probe", probe_kwargs(ctx, task), inputs, y)


def task_predictions(
    probe: LayerwiseLogisticRegression, inputs: TaskInputs
) -> dict[str, np.ndarray]:
    """The task probe's predictions (n_layers, n) on dev and test: computed once for all seeds."""
    return {s: probe.predict(inputs.X[s]) for s in EVAL_SPLITS}


def probe_task(
    ctx: RunContext,
    inputs: TaskInputs,
    layers: Sequence[int],
    seed: int,
    probe: LayerwiseLogisticRegression,
    task_pred: dict[str, np.ndarray],
) -> list[dict]:
    """Score the task probe and fit the control and majority probes for one seed; tidy rows.

    ``probe`` is the task probe from :func:`fit_task_probe` on these features and ``task_pred``
    its :func:`task_predictions`. That fit does not depend on the seed (a convex objective solved
    from zero weights), so it is fitted and applied once for all seeds; only the control task,
    the bootstrap and the mix subsample vary by seed.
    """
    section = ctx.study.probe
    assert section is not None
    task, X, model_label = inputs.task, inputs.X, inputs.model
    y = {s: task.splits[s].labels for s in X}
    common = {"model": model_label, "task": task.name, "seed": seed, "probe": "linear"}
    rows: list[dict] = []
    with ctx.timed("task scores + bootstrap", model=model_label, task=task.name, seed=seed):
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
                model=model_label,
                task=task.name,
            )
    rows += [
        PROBE.row(layer=layer, split="dev", metric="C", value=probe.C_[i], control="task", **common)
        for i, layer in enumerate(layers)
    ]
    if section.control:
        rows += _control_rows(ctx, inputs, layers, seed, task_pred, common)
    majority = MajorityClassBaseline().fit(X["train"][0], y["train"])
    rows += [
        PROBE.row(
            layer=pd.NA,
            split=s,
            metric="accuracy",
            value=majority.score(X[s][0], y[s]),
            control="task",
            **{**common, "probe": "majority"},
        )
        for s in EVAL_SPLITS
    ]
    return rows


def _control_rows(
    ctx: RunContext,
    inputs: TaskInputs,
    layers: Sequence[int],
    seed: int,
    task_pred: dict[str, np.ndarray],
    common: dict[str, object],
) -> list[dict]:
    """The control task's accuracy and the selectivity (task - control) at every layer."""
    task, X = inputs.task, inputs.X
    y = {s: task.splits[s].labels for s in X}
    types = {s: word_types(task.splits[s]) for s in X}
    control = ControlTask(seed=seed).fit(types["train"], y["train"])
    y_control = {s: control.transform(types[s]) for s in X}
    with ctx.timed("control probe", model=common["model"], task=task.name, seed=seed):
        control_probe = cached_layerwise_probe(
            ctx,
            f"{task.name} control (seed {seed})",
            probe_kwargs(ctx, task),
            inputs,
            y_control,
            seed=seed,
        )
    rows: list[dict] = []
    for s in EVAL_SPLITS:
        control_pred = control_probe.predict(X[s])
        control_acc = (control_pred == y_control[s][None]).mean(axis=1)
        task_acc = (task_pred[s] == y[s][None]).mean(axis=1)
        for i, layer in enumerate(layers):
            rows.append(
                PROBE.row(
                    layer=layer,
                    split=s,
                    metric="accuracy",
                    value=control_acc[i],
                    control="control",
                    **common,
                )
            )
            rows.append(
                PROBE.row(
                    layer=layer,
                    split=s,
                    metric="selectivity",
                    value=task_acc[i] - control_acc[i],
                    control="task",
                    **common,
                )
            )
    return rows


def layer_summaries(
    ctx: RunContext, inputs: TaskInputs, layers: Sequence[int], seed: int
) -> list[dict]:
    """Scalar-mix weights, expected layer, cumulative mix-k scores and center of gravity.

    Tenney et al. (2019) train mix-k on layers 0..k for every k; the mix over all layers is the
    last of these, so its weights give the expected layer without another fit. Scores are on
    test (Tenney et al. report dev). The mix probes train by minibatch Adam, so the train split is
    subsampled to ``mix_max_train`` targets (seeded) to keep the summaries CPU-sized.
    """
    section = ctx.study.probe
    assert section is not None
    n_train = len(inputs.task.splits["train"].labels)
    keep = np.arange(n_train)
    if section.mix_max_train is not None and len(keep) > section.mix_max_train:
        keep = np.sort(
            np.random.default_rng(seed).choice(keep, section.mix_max_train, replace=False)
        )
    scores, weights = cached_mix_summary(ctx, inputs, keep, seed)
    return _summary_rows(scores, weights, layers, seed, inputs.model, inputs.task.name)


def _summary_rows(
    scores: np.ndarray,
    weights: np.ndarray,
    layers: Sequence[int],
    seed: int,
    model_label: str,
    task: str,
) -> list[dict]:
    """``probe_summary`` rows: center of gravity, expected layer, then per layer the mix weight,
    the mix-k accuracy and (from layer 1) its gain over mix-(k-1)."""
    deltas = np.diff(scores)
    common = {"model": model_label, "task": task, "seed": seed, "control": "task", "split": "test"}
    rows = [
        SUMMARY.row(layer=pd.NA, metric="center_of_gravity", probe="mix-k",
                    value=center_of_gravity(scores), **common),
        SUMMARY.row(layer=pd.NA, metric="expected_layer", probe="mix",
                    value=expected_layer(weights), **common),
    ]  # fmt: skip
    for i, layer in enumerate(layers):
        rows.append(
            SUMMARY.row(layer=layer, metric="mix_weight", probe="mix", value=weights[i], **common)
        )
        rows.append(
            SUMMARY.row(layer=layer, metric="accuracy", probe="mix-k", value=scores[i], **common)
        )
        if i:
            rows.append(
                SUMMARY.row(
                    layer=layer, metric="delta", probe="mix-k", value=deltas[i - 1], **common
                )
            )
    return rows
