"""Every figure of a run, built from its tables in one place: run, export and dashboard.

Each stage's figure groups are listed in the stage registry (:mod:`probe.stages`); each group names
the tables it needs and one of the builders below, ``(tables, style, **options) -> {name: figure}``.
:func:`build_figures` is the one code path that turns tables into figures: the runner calls it
after each stage (style ``screen``, into ``RUN/figures/``), ``probe export`` calls it in the style
asked for, and the dashboard calls it per page. Figures come from tables alone, never from models
or caches. Figure names follow the one rule of :mod:`probe.figures.names`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import pandas as pd
import plotly.graph_objects as go

from probe.figures.names import figure_name
from probe.stages import figure_groups, load_function

__all__ = [
    "STYLES",
    "Style",
    "ablation_figures",
    "attention_figures",
    "build_figures",
    "cka_figures",
    "embeddings_figures",
    "landscape_figures",
    "mdl_figures",
    "probe_figures",
    "strategy_figures",
    "structural_figures",
    "summary_figures",
    "training_figures",
]

Style = Literal["screen", "paper"]
STYLES: tuple[Style, ...] = ("paper", "screen")
Tables = Mapping[str, pd.DataFrame]
#: ``series -> colour`` from the caller (the dashboard: one colour per series on every page);
#: builders colour any other series by its place in the tables.
Colors = Mapping[str, str] | None


def probe_figures(
    tables: Tables,
    style: Style,
    *,
    split: str = "test",
    metric: str | None = None,
    colors: Colors = None,
    **_: object,
) -> dict[str, go.Figure]:
    """``layerwise_<task>`` (and ``emergence_<task>`` for checkpoints of a training run), in
    ``metric`` where a task has it, else in the task's headline metric."""
    from probe.figures.probing import layerwise_figures

    return layerwise_figures(
        tables["probe"], split=split, metric=metric, colors=colors, style=style
    )


def summary_figures(
    tables: Tables, style: Style, *, colors: Colors = None, **_: object
) -> dict[str, go.Figure]:
    """``pipeline`` and, per model, ``mix_weights_<model>``."""
    from probe.figures.pipeline import mix_weights_heatmap, pipeline_figure

    summary = tables["probe_summary"]
    figures = {"pipeline": pipeline_figure(summary, colors=colors, style=style)}
    if (summary["metric"] == "mix_weight").any():
        for model in summary["model"].dropna().unique():
            figures[figure_name("mix_weights", model)] = mix_weights_heatmap(
                summary, str(model), style=style
            )
    return figures


def training_figures(
    tables: Tables, style: Style, *, smooth: int | None = None, colors: Colors = None, **_: object
) -> dict[str, go.Figure]:
    """``training_<task>``: every job of the task on one figure."""
    from probe.figures.training import training_figures as build

    return build(tables["training"], smooth=smooth, colors=colors, style=style)


def ablation_figures(tables: Tables, style: Style, **_: object) -> dict[str, go.Figure]:
    """Pretraining ablations: arms of jobs over seeds (probe numbers when the run has them)."""
    from probe.figures.ablations import ablation_figures as build

    return build(tables["training"], tables.get("probe"), style=style)


def strategy_figures(tables: Tables, style: Style, **_: object) -> dict[str, go.Figure]:
    """Fine-tuning strategies per task: ``strategy_params_<task>`` (dev metric vs trainable
    parameters), ``strategy_freeze_<task>``, ``strategy_mix_weights_<task>``,
    ``strategy_weight_change_<task>``; empty unless a task has two or more arms."""
    from probe.figures.strategies import strategy_figures as build

    return build(tables["training"], style=style)


def embeddings_figures(
    tables: Tables,
    style: Style,
    *,
    task: str | None = None,
    split: str | None = None,
    sts_metric: str = "spearman",
    colors: Colors = None,
    **_: object,
) -> dict[str, go.Figure]:
    """``embeddings_sts_<task>``, ``embeddings_layers*``, ``embeddings_isotropy``; ``task``,
    ``split`` and ``sts_metric`` (spearman, pearson) choose what they show (the dashboard's
    selectors; default every task, the test split, Spearman)."""
    from probe.figures.embeddings import embeddings_figures as build

    return build(
        tables["embeddings"],
        task=task,
        split=split,
        metric=sts_metric,
        colors=colors,
        style=style,
    )


def landscape_figures(
    tables: Tables, style: Style, *, colors: Colors = None, **_: object
) -> dict[str, go.Figure]:
    """Loss curves, 1-D line, 2-D/3-D planes and sharpness, as far as the tables allow; with
    ``pair``/``init`` labels also convergence, basins and layer-invariance figures."""
    from probe.figures.landscape import landscape_figures as build

    return build(
        trajectory=tables["landscape_trajectory"],
        line=tables.get("landscape_1d"),
        plane=tables.get("landscape_2d"),
        sharpness=tables.get("sharpness"),
        layers=tables.get("landscape_layers"),
        convergence=tables.get("landscape_convergence"),
        colors=colors,
        style=style,
    )


def cka_figures(tables: Tables, style: Style, **_: object) -> dict[str, go.Figure]:
    """``cka_<model>`` (layer x layer), ``cka_by_layer``, ``cka_checkpoints`` (steps)."""
    from probe.figures.similarity import cka_figures as build

    return build(tables["cka"], style=style)


def attention_figures(tables: Tables, style: Style, **_: object) -> dict[str, go.Figure]:
    """``attention_<model>`` (layer x head maps), ``attention_relations_<model>``."""
    from probe.figures.similarity import attention_figures as build

    return build(tables["attention"], style=style)


def mdl_figures(tables: Tables, style: Style, **_: object) -> dict[str, go.Figure]:
    """``mdl_<task>``: online code length and compression by layer, task vs control."""
    from probe.figures.mdl import mdl_figures as build

    return build(tables["mdl"], style=style)


def structural_figures(
    tables: Tables, style: Style, *, split: str = "test", **_: object
) -> dict[str, go.Figure]:
    """``structural`` and, with the example table, ``structural_tree_<model>``."""
    from probe.figures.structural import structural_figures as build

    return build(tables["structural"], tables.get("structural_example"), split=split, style=style)


def build_figures(
    tables: Tables,
    style: Style = "screen",
    groups: Iterable[str] | None = None,
    **options: object,
) -> dict[str, go.Figure]:
    """Every figure the given tables allow (groups whose needed tables are all present, non-empty).

    Parameters
    ----------
    tables : ``table name -> table`` (e.g. ``{"probe": ..., "probe_summary": ...}``).
    style : ``screen`` (run folder, dashboard, HTML) or ``paper``.
    groups : keys of the registry's figure groups to build (default: all).
    **options : passed to every group's builder (``split="dev"`` for the probe curves,
        ``colors={series: colour}`` for all, ...).
    """
    known = {group.key: group for group in figure_groups()}
    keys = list(groups) if groups is not None else list(known)
    figures: dict[str, go.Figure] = {}
    for key in keys:
        group = known[key]
        present = {n: tables[n] for n in group.all_tables if tables.get(n) is not None}
        if all(n in present and not present[n].empty for n in group.tables):
            figures.update(load_function(group.build)(present, style, **options))
    return figures
