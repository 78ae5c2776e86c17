"""Summaries of the ``attention`` table (pandas only: the dashboard and figures import them).

- :func:`best_heads`: per model and relation, the head whose most-attended word is most often the
  dependency head, beside the best fixed offset (Clark et al. 2019, Table 1);
- :func:`mostly_shares`: per model and layer, the share of heads that put more than half of
  their attention on [CLS], on [SEP], on punctuation, or on the three together.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["DIRECTIONS", "MOSTLY", "best_heads", "mostly_shares"]

#: A head attends "mostly" to a token kind when more than this share of its weight goes there.
MOSTLY = 0.5


DIRECTIONS = {"dep_accuracy": "dep->head", "dep_accuracy_reverse": "head->dep"}


def _best(heads: pd.DataFrame) -> pd.DataFrame:
    best = heads.loc[heads.groupby(["model", "relation"])["value"].idxmax()]
    return best.set_index(["model", "relation"])


def best_heads(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and relation: the best head and the best fixed offset.

    Columns: ``model, relation, n``; ``layer, head, accuracy`` of the best head whose
    most-attended word is the dependency head (``dep_accuracy``); ``offset, offset_accuracy`` of
    the best fixed offset; and, as Clark et al.'s Table 1 (the better of both directions),
    ``either_layer, either_head, either_direction, either_accuracy`` (``direction`` is
    ``dep->head`` or ``head->dep``, where the word attending most to the dependent is its head).
    """
    heads = table[(table["probe"] == "attention") & table["metric"].isin(list(DIRECTIONS))]
    offsets = table[table["probe"] == "offset"]
    best_offset = offsets.loc[offsets.groupby("relation")["value"].idxmax()].set_index("relation")
    forward = _best(heads[heads["metric"] == "dep_accuracy"])
    either = _best(heads).reindex(forward.index)
    relations = forward.index.get_level_values("relation")
    return pd.DataFrame(
        {
            "model": forward.index.get_level_values("model"),
            "relation": relations,
            "n": forward["n"].values,
            "layer": forward["layer"].values,
            "head": forward["head"].values,
            "accuracy": forward["value"].values,
            "offset": best_offset["offset"].reindex(relations).values,
            "offset_accuracy": best_offset["value"].reindex(relations).values,
            "either_layer": either["layer"].values,
            "either_head": either["head"].values,
            "either_direction": either["metric"].map(DIRECTIONS).values,
            "either_accuracy": either["value"].values,
        }
    )


def mostly_shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and layer: share of heads putting more than half their weight on each kind."""
    heads = table[(table.probe == "attention") & table.metric.isin(
        ["attn_cls", "attn_sep", "attn_punct"])]  # fmt: skip
    wide = heads.pivot_table(index=["model", "layer", "head"], columns="metric", values="value")
    wide["attn_special"] = wide[["attn_cls", "attn_sep", "attn_punct"]].sum(axis=1)
    return (wide > MOSTLY).groupby(level=["model", "layer"]).mean().reset_index()
