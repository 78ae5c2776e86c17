"""Summaries of the ``attention`` table (pandas only: the dashboard and figures import them).

- :func:`best_heads`: per model and relation, the head whose most-attended word is most often the
  dependency head, beside the best fixed offset (Clark et al. 2019, Table 1);
- :func:`mostly_shares`: per model and layer, the share of heads that put more than half of
  their attention on [CLS], on [SEP], on punctuation, or on the three together.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["MOSTLY", "best_heads", "mostly_shares"]

#: A head attends "mostly" to a token kind when more than this share of its weight goes there.
MOSTLY = 0.5


def best_heads(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and relation: the best head, its accuracy, the best offset and its accuracy."""
    heads = table[(table.probe == "attention") & (table.metric == "dep_accuracy")]
    offsets = table[table.probe == "offset"]
    best_offset = offsets.loc[offsets.groupby("relation").value.idxmax()].set_index("relation")
    best = heads.loc[heads.groupby(["model", "relation"]).value.idxmax()]
    return pd.DataFrame(
        {
            "model": best.model.values,
            "relation": best.relation.values,
            "n": best.n.values,
            "layer": best.layer.values,
            "head": best["head"].values,
            "accuracy": best.value.values,
            "offset": best_offset.offset.reindex(best.relation).values,
            "offset_accuracy": best_offset.value.reindex(best.relation).values,
        }
    )


def mostly_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and layer: share of heads putting more than half their weight on each kind."""
    heads = table[(table.probe == "attention") & table.metric.isin(
        ["attn_cls", "attn_sep", "attn_punct"])]  # fmt: skip
    wide = heads.pivot_table(index=["model", "layer", "head"], columns="metric", values="value")
    wide["attn_special"] = wide[["attn_cls", "attn_sep", "attn_punct"]].sum(axis=1)
    return (wide > MOSTLY).groupby(level=["model", "layer"]).mean().reset_index()
