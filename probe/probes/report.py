"""Console report of the probe stage: per-layer accuracy, best layer per task, layer summaries.

Rich tables printed at the end of the stage from the tables it wrote (nothing is computed here
that is not in the tables).
"""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from probe.probes.layer_orders import pairwise_orders
from probe.probes.summary_rules import MIN_COG_GAIN_POINTS, center_of_gravity_is_meaningful

__all__ = ["centre_of_gravity_table", "layer_orders_table", "layer_tables", "summary_table"]


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


def layer_orders_table(frame: pd.DataFrame, metric: str = "center_of_gravity") -> Table | None:
    """Every pair of tasks: which peaks first, the per-seed gap and Tenney et al.'s order.

    A claim such as "POS before dependencies" holds for a model only when the gap has the same
    sign in every seed; the last columns compare with BERT-large (Tenney et al. 2019, Table 1).
    None with fewer than two tasks.
    """
    orders = pairwise_orders(frame, metric)
    if orders.empty:
        return None
    name = metric.replace("_", " ")
    table = Table(
        "model",
        "order",
        "gap (mean)",
        "gap per seed (min..max)",
        "same sign, every seed",
        "Tenney BERT-large gap",
        "agrees",
        title=f"pairwise layer orders by {name} (gap = second - first, in layers)",
    )
    for row in orders.itertuples():
        agrees = (
            "-" if row.agrees_with_tenney is None else ("yes" if row.agrees_with_tenney else "no")
        )
        table.add_row(
            str(row.model),
            f"{row.first} < {row.second}",
            f"{row.gap_mean:.2f}",
            f"{row.gap_min:.2f}..{row.gap_max:.2f} ({row.n_seeds})",
            "yes" if row.same_sign_every_seed else "no",
            "-" if pd.isna(row.tenney_gap) else f"{row.tenney_gap:+.2f}",
            agrees,
        )
    return table
