"""Structural probes and their tree metrics, checked against brute force and a known tree metric."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from scipy.stats import spearmanr

from probe.errors import DataError
from probe.probes.structural import fit_structural_probes, predict_structure
from probe.probes.trees import (
    dspr,
    is_punct,
    mst_edges,
    nspr,
    root_accuracy,
    spearman_rows,
    tree_depths,
    tree_distances,
    uuas,
)


def _random_heads(n: int, rng: np.random.Generator) -> tuple[int, ...]:
    """A random projective-or-not tree over n words: word i attaches to an earlier-built word."""
    order = rng.permutation(n)
    heads = [0] * n
    for k in range(1, n):
        heads[order[k]] = int(order[rng.integers(0, k)]) + 1
    return tuple(heads)


def _prufer_trees(n: int):
    """Every labelled tree on n nodes, as edge sets (Cayley: n^(n-2) of them)."""
    for seq in itertools.product(range(n), repeat=n - 2):
        degree = [1] * n
        for x in seq:
            degree[x] += 1
        edges = set()
        for x in seq:
            leaf = min(i for i in range(n) if degree[i] == 1)
            edges.add((min(leaf, x), max(leaf, x)))
            degree[leaf] -= 1
            degree[x] -= 1
        u, v = (i for i in range(n) if degree[i] == 1)
        edges.add((u, v))
        yield edges


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_minimum_spanning_tree_matches_brute_force_over_all_spanning_trees(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        w = rng.random((n, n))
        w = w + w.T
        best = min(_prufer_trees(n), key=lambda edges: sum(w[i, j] for i, j in edges))
        assert mst_edges(w) == best


def test_minimum_spanning_tree_skips_punctuation_and_keeps_sentence_positions():
    rng = np.random.default_rng(0)
    w = rng.random((6, 6))
    w = w + w.T
    keep = np.array([True, False, True, True, False, True])
    kept = np.flatnonzero(keep)
    sub = w[np.ix_(kept, kept)]
    best = min(_prufer_trees(4), key=lambda edges: sum(sub[i, j] for i, j in edges))
    assert mst_edges(w, keep) == {(int(kept[i]), int(kept[j])) for i, j in best}


def test_tree_distances_and_depths_of_a_chain_and_a_star():
    assert tree_distances((0, 1, 2, 3)).tolist()[0] == [0, 1, 2, 3]
    star = (0, 1, 1, 1)
    assert tree_depths(star).tolist() == [0, 1, 1, 1]
    assert tree_distances(star)[1, 3] == 2
    with pytest.raises(DataError, match="one tree"):
        tree_distances((0, 3, 2))  # words 2 and 3 point at each other


def _reference_length_average(per_sentence_values, lengths):
    """The reference's loop: a list per length, mean per length, mean over lengths 5..50."""
    by_length = defaultdict(list)
    for values, n in zip(per_sentence_values, lengths, strict=True):
        by_length[n].extend(values)
    means = {n: np.mean(v) for n, v in by_length.items()}
    return np.mean([means[n] for n in range(5, 51) if n in means])


def test_dspr_and_nspr_match_a_brute_force_spearman_loop():
    rng = np.random.default_rng(1)
    lengths = [3, 5, 5, 7, 12, 51, 7, 9]
    gold_d, pred_d, gold_h, pred_h = [], [], [], []
    for n in lengths:
        heads = _random_heads(n, rng)
        gold_d.append(tree_distances(heads))
        gold_h.append(tree_depths(heads))
        noise = rng.random((n, n))
        pred_d.append(gold_d[-1] + 2 * (noise + noise.T))
        pred_h.append(gold_h[-1] + 2 * rng.random(n))
    expected_d = _reference_length_average(
        [
            [spearmanr(p, g).statistic for p, g in zip(P, G, strict=True)]
            for P, G in zip(pred_d, gold_d, strict=True)
        ],
        lengths,
    )
    expected_n = _reference_length_average(
        [[spearmanr(p, g).statistic] for p, g in zip(pred_h, gold_h, strict=True)], lengths
    )
    assert dspr(pred_d, gold_d) == pytest.approx(expected_d, abs=1e-12)
    assert nspr(pred_h, gold_h) == pytest.approx(expected_n, abs=1e-12)


def test_spearman_rows_equals_scipy_with_ties():
    a = np.array([[1, 2, 2, 3, 0], [5, 5, 1, 1, 2]], dtype=float)
    b = np.array([[0, 1, 2, 2, 3], [1, 2, 3, 4, 5]], dtype=float)
    expected = [spearmanr(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman_rows(a, b), expected, atol=1e-12)


def test_punctuation_is_the_reference_ptb_tag_set():
    mask = is_punct([",", ".", "NN", "HYPH", "-LRB-", "``", "''", ":", "NFP"])
    assert mask.tolist() == [True, True, False, False, True, True, True, True, False]


def test_uuas_and_root_accuracy_on_hand_built_cases():
    heads = (2, 0, 2, 2)  # word 3 (index 3) is punctuation, attached to the root
    gold = tree_distances(heads)
    keep = np.array([True, True, True, False])
    assert uuas([gold], [gold], [keep]) == 1.0
    chain = np.abs(np.subtract.outer(np.arange(4), np.arange(4))).astype(float)
    assert uuas([chain], [gold], [keep]) == 1.0  # 0-1-2 is also the gold tree here
    assert root_accuracy([np.array([1.0, 0.5, 2.0, 0.1])], [tree_depths(heads)], [keep]) == 1.0
    assert root_accuracy([np.array([0.2, 0.5, 2.0, 0.1])], [tree_depths(heads)], [keep]) == 0.0


def _tree_metric_sentences(n_sentences: int, d: int, seed: int):
    """Words whose squared distances are exactly tree distances and squared norms are depths.

    Each edge (word -> head) gets its own orthonormal direction in R^d; a word's vector is the
    sum of the directions on its path to the root. So B = identity is a perfect probe.
    """
    rng = np.random.default_rng(seed)
    vectors, heads_all = [], []
    for _ in range(n_sentences):
        n = int(rng.integers(4, 12))
        heads = _random_heads(n, rng)
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0][:, :n]
        h = np.zeros((n, d))
        for i in range(n):
            j = i
            while heads[j] != 0:
                h[i] += basis[:, j]
                j = heads[j] - 1
        vectors.append(h)
        heads_all.append(heads)
    X = np.concatenate(vectors)[None].astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in heads_all])])
    return X, offsets, heads_all


@pytest.mark.parametrize("kind", ["distance", "depth"])
def test_probe_recovers_the_tree_of_vectors_built_from_a_tree_metric(kind):
    """Distance probe: UUAS 100 (and DSpr. near 1); depth probe: every root (and NSpr.)."""
    d = 16
    gold_of = tree_distances if kind == "distance" else tree_depths
    (X, off, heads), (Xd, offd, headsd), (Xt, offt, headst) = (
        _tree_metric_sentences(n, d, seed=seed) for n, seed in ((200, 0), (60, 1), (60, 2))
    )
    fit = fit_structural_probes(
        X, off, [gold_of(h) for h in heads], Xd, offd, [gold_of(h) for h in headsd],
        kind=kind, rank=d, max_epochs=20, device="cpu",
        lr=1e-2,  # the reference's 1e-3 gets there too, in more epochs
    )  # fmt: skip
    pred = [p[0] for p in predict_structure(Xt, offt, fit.B, kind=kind, device="cpu")]
    gold = [gold_of(h) for h in headst]
    keep = [np.ones(len(h), dtype=bool) for h in headst]
    if kind == "distance":
        assert uuas(pred, gold, keep) == 1.0
        assert dspr(pred, gold) > 0.95
    else:
        assert root_accuracy(pred, gold, keep) == 1.0
        assert nspr(pred, gold) > 0.9
