"""Fits of the probe stage, read back from the probe cache when nothing they depend on changed.

One task's probe inputs on one model (:class:`TaskInputs`) are fitted several times: the task
probe once, the control task once per seed, the layer summaries once per seed. Each fit is looked
up in the :class:`~probe.probes.fit_cache.ProbeCache` under a key made of

- the inputs: the feature cache key of every split (model weights, data, sentences, pooling,
  layers), the targets of every split and the span settings that turn features into inputs;
- the labels the fit sees (a control task's labels are drawn from its seed);
- the estimator's settings (every ``get_params()`` value) and, for layer summaries, the seed
  and the training subsample;
- :data:`FIT_VERSION`, bumped whenever fitting code changes what it learns.

So a warm rerun reuses every fit, a new task or seed fits only itself, and changing one setting
(``probe.C``, ``mix_max_train``) refits exactly the entries that depend on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from probe.data import TaskData
from probe.probes.fit_cache import ProbeCache, array_digest
from probe.probes.linear import LayerStats, LayerwiseLogisticRegression
from probe.probes.summaries import ScalarMixProbe, cumulative_mix_scores
from probe.rundir import RunContext

__all__ = ["FIT_VERSION", "TaskInputs", "cached_layerwise_probe", "cached_mix_summary"]

#: Bump when a change to the fitting code changes what a fit learns (invalidates every entry).
FIT_VERSION = 1

# What a LayerwiseLogisticRegression learns, stored per entry (mean_/scale_ only when set).
_LOGISTIC_ARRAYS = ("coef_", "intercept_", "C_", "Cs_", "dev_scores_", "n_iter_", "mean_", "scale_")


@dataclass
class TaskInputs:
    """One task's probe inputs on one model and what identifies them in the probe cache.

    Attributes
    ----------
    task : the task (labels, targets, splits).
    X : probe inputs per split, each of shape (n_layers, n_targets, D).
    digest : hash of the feature cache keys, targets and span settings behind ``X``.
    model : the model's label in the study.
    stats : per-layer statistics of ``X["train"]``, shared by the task and control fits.
    cache : the run's probe cache.
    """

    task: TaskData
    X: dict[str, np.ndarray]
    digest: str
    model: str
    cache: ProbeCache
    stats: LayerStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = LayerStats(self.X["train"])


def _settings(estimator) -> dict:
    """The estimator's settings as JSON-able values (a torch device becomes its name)."""
    return {name: str(v) if name == "device" else v for name, v in estimator.get_params().items()}


def _fit_logistic(
    ctx: RunContext, label: str, probe: LayerwiseLogisticRegression, inputs: TaskInputs, y: dict
) -> None:
    """Fit ``probe`` on train, C chosen on dev, behind a progress bar."""
    X = inputs.X
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
            X["train"],
            y["train"],
            X["dev"],
            y["dev"],
            progress=lambda n: bar.advance(job, n),
            stats=inputs.stats,
        )
    ctx.console.print(
        f"  {label}: fitted {n_fits} (layer, C) pairs on {len(y['train'])} examples in "
        f"{time.perf_counter() - start:.1f} s"
    )


def cached_layerwise_probe(
    ctx: RunContext,
    label: str,
    kwargs: dict,
    inputs: TaskInputs,
    y: dict[str, np.ndarray],
    *,
    seed: int | None = None,
) -> LayerwiseLogisticRegression:
    """The all-layer probe of labels ``y`` on ``inputs``: from the probe cache, or fitted now.

    ``seed`` names the control task the labels come from (None for the task's own labels).
    """
    probe = LayerwiseLogisticRegression(**kwargs)
    key = inputs.cache.key(
        kind="layerwise_logistic",
        version=FIT_VERSION,
        inputs=inputs.digest,
        labels=array_digest(y["train"], y["dev"]),
        settings=_settings(probe),
        control_seed=seed,
    )
    arrays = inputs.cache.load(key)
    if arrays is not None:
        for name, value in arrays.items():
            setattr(probe, name, value)
        probe.mean_ = arrays.get("mean_")
        probe.scale_ = arrays.get("scale_")
        probe.n_layers_, n_classes, probe.n_features_in_ = probe.coef_.shape
        probe.classes_ = np.arange(n_classes)
        ctx.console.print(f"  {label}: reused from the probe cache ({key})")
        return probe
    _fit_logistic(ctx, label, probe, inputs, y)
    stored = {
        name: getattr(probe, name)
        for name in _LOGISTIC_ARRAYS
        if getattr(probe, name, None) is not None
    }
    inputs.cache.store(key, stored, {"what": label, "model": inputs.model})
    return probe


def cached_mix_summary(
    ctx: RunContext, inputs: TaskInputs, keep: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mix-k test scores (n_layers,) and the all-layer mix's weights (n_layers,) for ``seed``.

    ``keep`` are the training targets the mix probes see (a seeded subsample). From the probe
    cache, or fitted now (:func:`~probe.probes.summaries.cumulative_mix_scores`).
    """
    task, X = inputs.task, inputs.X
    y = {s: task.splits[s].labels for s in ("train", "dev", "test")}
    template = ScalarMixProbe(seed=seed)
    key = inputs.cache.key(
        kind="cumulative_mix",
        version=FIT_VERSION,
        inputs=inputs.digest,
        labels=array_digest(y["train"], y["dev"], y["test"]),
        keep=array_digest(keep),
        settings=_settings(template),
    )
    arrays = inputs.cache.load(key)
    label = f"{task.name} layer summaries (seed {seed})"
    if arrays is not None:
        ctx.console.print(f"  {label}: reused from the probe cache ({key})")
        return arrays["scores"], arrays["weights"]
    train = X["train"] if len(keep) == X["train"].shape[1] else X["train"][:, keep]
    scores, probes = cumulative_mix_scores(
        train,
        y["train"][keep],
        X["dev"],
        y["dev"],
        X["test"],
        y["test"],
        return_probes=True,
        **template.get_params(),
    )
    weights = probes[-1].layer_weights_
    inputs.cache.store(
        key,
        {
            "scores": scores,
            "weights": weights,
            "n_epochs": np.array([p.n_iter_ for p in probes]),
            "best_epoch": np.array([p.best_epoch_ for p in probes]),
        },
        {"what": label, "model": inputs.model},
    )
    return scores, weights
