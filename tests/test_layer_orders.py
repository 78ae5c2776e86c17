"""Pairwise task orders with seed spread, compared with Tenney et al. (2019) pair by pair."""

from __future__ import annotations

import pandas as pd

from probe.probes.layer_orders import pairwise_orders


def _summary(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"model": "m", "task": task, "seed": seed, "metric": "center_of_gravity", "value": v}
        for task, seeds in values.items()
        for seed, v in enumerate(seeds)
    ]
    return pd.DataFrame(rows)


def test_entities_before_dependencies_is_tenneys_order_and_the_reverse_disagrees():
    orders = pairwise_orders(
        _summary({"deprel": [1.6, 1.7, 1.8], "ner_conll2003": [2.0, 2.3, 2.1], "upos": [1.5] * 3})
    ).set_index(["first", "second"])
    # BERT-large: Entities 4.64 < Deps 5.69, so deprel < ner disagrees with the paper
    assert not orders.loc[("deprel", "ner_conll2003"), "agrees_with_tenney"]
    assert orders.loc[("upos", "deprel"), "agrees_with_tenney"]
    assert bool(orders.loc[("deprel", "ner_conll2003"), "same_sign_every_seed"])


def test_a_gap_that_flips_sign_across_seeds_is_not_an_order():
    orders = pairwise_orders(_summary({"upos": [1.0, 2.0], "deprel": [1.5, 1.4]}))
    row = orders.iloc[0]
    assert row.gap_min < 0 < row.gap_max
    assert not row.same_sign_every_seed


def test_the_printed_orders_table_has_one_row_per_pair_with_its_seed_range():
    from rich.console import Console

    from probe.probes.report import layer_orders_table

    table = layer_orders_table(_summary({"upos": [1.0, 1.2], "deprel": [1.5, 1.4]}))
    assert table is not None and table.row_count == 1
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "upos < deprel" in text and "0.20..0.50 (2)" in text and "yes" in text
    assert layer_orders_table(_summary({"upos": [1.0]})) is None
