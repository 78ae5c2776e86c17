"""Pairwise layer orders of tasks, with their spread over seeds, against Tenney et al. (2019).

A sentence like "POS peaks before dependencies" is a claim about a *pair* of tasks. It holds
for a model when the per-seed difference of the two tasks' layer summaries (center of gravity
or expected layer) has the same sign in every seed; :func:`pairwise_orders` reports that
difference per pair (mean, smallest and largest over seeds) next to the order Tenney et al.
report for BERT-large (Table 1, :data:`TENNEY_BERT_LARGE`), so that agreement and disagreement
are read pair by pair instead of from one sorted list.

Examples
--------
>>> summary = pd.DataFrame({
...     "model": "m", "task": ["upos", "deprel"] * 2, "seed": [0, 0, 1, 1],
...     "metric": "center_of_gravity", "value": [1.4, 1.8, 1.6, 1.7]})
>>> row = pairwise_orders(summary).iloc[0]
>>> row.first, row.second, round(float(row.gap_mean), 2), bool(row.same_sign_every_seed)
('upos', 'deprel', 0.25, True)
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

__all__ = ["TASK_TO_TENNEY", "TENNEY_BERT_LARGE", "pairwise_orders"]

#: Tenney, Das & Pavlick (2019), Table 1, BERT-large (layers 0..24): center of gravity E_Delta
#: and expected layer E_s, as reproduced from the authors' released analysis in
#: ``tests/fixtures/tenney2019_bert_large.json`` (Relations E_s: 13.25 as quoted; the released
#: weights give 12.83).
TENNEY_BERT_LARGE = {
    "center_of_gravity": {"POS": 3.39, "Deps": 5.69, "Entities": 4.64, "Relations": 9.40},
    "expected_layer": {"POS": 11.68, "Deps": 13.75, "Entities": 13.16, "Relations": 13.25},
}
#: Our tasks and the Tenney et al. task each one corresponds to.
TASK_TO_TENNEY = {
    "upos": "POS",
    "deprel": "Deps",
    "ner_conll2003": "Entities",
    "ner_uner": "Entities",
    "semeval_relations": "Relations",
}


def pairwise_orders(summary: pd.DataFrame, metric: str = "center_of_gravity") -> pd.DataFrame:
    """Every pair of tasks of every model: per-seed gaps of ``metric`` and Tenney's order.

    Parameters
    ----------
    summary : DataFrame
        A ``probe_summary`` table (rows with ``metric`` = ``center_of_gravity`` or
        ``expected_layer``, one per model, task and seed).
    metric : str

    Returns
    -------
    DataFrame with one row per (model, first, second), ``first`` the task with the lower mean:
    ``first_mean``, ``second_mean``, ``gap_mean`` (second - first, >= 0), ``gap_min``,
    ``gap_max`` (over seeds, paired by seed), ``n_seeds``, ``same_sign_every_seed``, and where
    both tasks map to Tenney et al.'s: ``tenney_gap`` (their second - first, BERT-large layers)
    and ``agrees_with_tenney``.
    """
    rows = summary[summary.metric == metric]
    out = []
    published = TENNEY_BERT_LARGE.get(metric, {})
    for model, group in rows.groupby("model", sort=False):
        wide = group.pivot_table(index="seed", columns="task", values="value", aggfunc="mean")
        means = wide.mean()
        for a, b in itertools.combinations(sorted(wide.columns, key=means.get), 2):
            paired = (wide[b] - wide[a]).dropna()
            ta, tb = TASK_TO_TENNEY.get(a), TASK_TO_TENNEY.get(b)
            tenney_gap = (
                published[tb] - published[ta]
                if ta in published and tb in published and ta != tb
                else np.nan
            )
            out.append(
                {
                    "model": model,
                    "first": a,
                    "second": b,
                    "first_mean": means[a],
                    "second_mean": means[b],
                    "gap_mean": means[b] - means[a],
                    "gap_min": paired.min() if len(paired) else np.nan,
                    "gap_max": paired.max() if len(paired) else np.nan,
                    "n_seeds": len(paired),
                    "same_sign_every_seed": bool(len(paired)) and bool((paired > 0).all()),
                    "tenney_gap": tenney_gap,
                    "agrees_with_tenney": (
                        bool(tenney_gap > 0) if np.isfinite(tenney_gap) else None
                    ),
                }
            )
    return pd.DataFrame(out)
