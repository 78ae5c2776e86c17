"""Dependency-tree metrics of structural probes (Hewitt & Manning 2019), as their code has them.

Gold quantities come from the HEAD column of a CoNLL-U sentence (1-based heads, 0 = root):
:func:`tree_distances` (edges on the path between two words) and :func:`tree_depths` (edges to
the root). A structural probe predicts a squared distance for every pair of words, or a squared
norm ("depth") for every word; the metrics compare those with the gold tree:

* **UUAS**: the minimum spanning tree of the predicted distances against the gold tree, as a
  share of gold edges recovered, counted over the whole corpus (not averaged per sentence).
  Both trees span only the non-punctuation words (:data:`PUNCT_XPOS`): the gold tree is the
  minimum spanning tree of the gold distances between those words, which is the gold tree itself
  whenever punctuation is a leaf (UD EWT test: all but one sentence).
* **DSpr.**: for every word, the Spearman correlation between its predicted and gold distances to
  all words of the sentence (itself and punctuation included), averaged over the sentences of each
  length, then over the lengths 5 to 50 that occur.
* **NSpr.**: the same for depths, one correlation per sentence.
* **Root accuracy**: the share of sentences whose gold root is the least deep non-punctuation
  word by predicted depth (all sentences count, also those whose root is punctuation).

These are the definitions of john-hewitt/structural-probes (``reporter.py``); punctuation is the
same set of Penn Treebank tags, read from the XPOS column. Written by hand because no library
computes them; scipy supplies the spanning tree and the ranks.

Examples
--------
>>> heads = (2, 0, 2)                    # "the dog barks": the <- dog -> barks, dog is the root
>>> tree_distances(heads).tolist()
[[0, 1, 2], [1, 0, 1], [2, 1, 0]]
>>> tree_depths(heads).tolist()
[1, 0, 1]
>>> sorted(mst_edges(tree_distances(heads)))
[(0, 1), (1, 2)]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree, shortest_path
from scipy.stats import rankdata

from probe.errors import DataError

__all__ = [
    "PUNCT_XPOS",
    "SPEARMAN_LENGTHS",
    "dspr",
    "is_punct",
    "length_averaged",
    "mst_edges",
    "nspr",
    "root_accuracy",
    "spearman_rows",
    "tree_depths",
    "tree_distances",
    "uuas",
]

#: Penn Treebank tags that Hewitt & Manning's evaluation treats as punctuation (``reporter.py``).
PUNCT_XPOS = frozenset({"''", ",", ".", ":", "``", "-LRB-", "-RRB-"})
#: Sentence lengths whose per-length means enter DSpr. and NSpr.
SPEARMAN_LENGTHS = range(5, 51)


def is_punct(xpos: Sequence[str]) -> np.ndarray:
    """Boolean mask of the punctuation words of a sentence, from its XPOS tags."""
    return np.array([tag in PUNCT_XPOS for tag in xpos], dtype=bool)


def tree_distances(heads: Sequence[int]) -> np.ndarray:
    """Path lengths between all pairs of words, int64 of shape (n, n).

    Raises
    ------
    DataError
        If the heads do not form one tree (a cycle, or no single root).
    """
    n = len(heads)
    heads = np.asarray(heads, dtype=np.int64)
    if (heads == 0).sum() != 1:
        raise DataError(f"a dependency tree needs exactly one root (HEAD 0), got heads {heads}")
    child = np.flatnonzero(heads)
    adjacency = np.zeros((n, n))
    adjacency[child, heads[child] - 1] = 1
    dist = shortest_path(adjacency, method="D", directed=False, unweighted=True)
    if not np.isfinite(dist).all():
        raise DataError(f"the heads {heads.tolist()} do not connect all words into one tree")
    return dist.astype(np.int64)


def tree_depths(heads: Sequence[int]) -> np.ndarray:
    """Edges from each word to the root, int64 of shape (n,)."""
    root = int(np.flatnonzero(np.asarray(heads) == 0)[0]) if 0 in heads else -1
    if root < 0:
        raise DataError(f"a dependency tree needs a root (HEAD 0), got heads {list(heads)}")
    return tree_distances(heads)[root]


def mst_edges(dist: np.ndarray, keep: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Undirected edges ``(i, j)``, ``i < j``, of a minimum spanning tree of ``dist``.

    Parameters
    ----------
    dist : ndarray of shape (n, n)
        Symmetric distances (only the upper triangle is read).
    keep : bool ndarray of shape (n,), optional
        Words the tree spans (default all); indices in the result are sentence positions.
    """
    index = np.arange(len(dist)) if keep is None else np.flatnonzero(keep)
    if len(index) < 2:
        return set()
    sub = np.asarray(dist, dtype=np.float64)[np.ix_(index, index)]
    # scipy reads a zero as "no edge"; a constant shift changes no spanning tree's rank (every
    # tree has the same number of edges), so shift all weights above zero.
    upper = np.triu(sub - sub.min() + 1.0, k=1)
    tree = minimum_spanning_tree(upper).tocoo()
    return {
        (int(min(index[i], index[j])), int(max(index[i], index[j])))
        for i, j in zip(tree.row, tree.col, strict=True)
    }


def uuas(
    predicted: Sequence[np.ndarray], gold: Sequence[np.ndarray], keep: Sequence[np.ndarray]
) -> float:
    """Undirected unlabelled attachment score over a corpus (share of gold edges recovered).

    Parameters
    ----------
    predicted, gold : sequences of ndarray of shape (n_s, n_s)
        Predicted and gold distances of each sentence.
    keep : sequence of bool ndarray of shape (n_s,)
        Non-punctuation words of each sentence.
    """
    correct = total = 0
    for pred, true, mask in zip(predicted, gold, keep, strict=True):
        gold_edges = mst_edges(true, mask)
        correct += len(gold_edges & mst_edges(pred, mask))
        total += len(gold_edges)
    if total == 0:
        raise ValueError("no gold edges between non-punctuation words: UUAS is undefined")
    return correct / total


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b`` (average ranks).

    Equal to ``scipy.stats.spearmanr(a[i], b[i]).statistic`` for every row (NaN for a constant
    row), vectorised over rows.
    """
    ra = rankdata(np.atleast_2d(a), axis=1)
    rb = rankdata(np.atleast_2d(b), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / denom


def length_averaged(
    values: Sequence[np.ndarray], lengths: Sequence[int], lengths_used=SPEARMAN_LENGTHS
) -> float:
    """Mean of ``values`` per sentence length, then the mean over ``lengths_used`` that occur.

    ``values[s]`` holds one or more numbers of sentence ``s`` (one per word for DSpr.).
    """
    by_length: dict[int, list[np.ndarray]] = defaultdict(list)
    for value, length in zip(values, lengths, strict=True):
        by_length[int(length)].append(np.atleast_1d(value))
    means = [np.mean(np.concatenate(by_length[n])) for n in lengths_used if n in by_length]
    if not means:
        raise ValueError(
            f"no sentence has a length in {lengths_used.start}..{lengths_used.stop - 1}"
        )
    return float(np.mean(means))


def dspr(predicted: Sequence[np.ndarray], gold: Sequence[np.ndarray]) -> float:
    """Distance Spearman: per word, then per sentence length (5-50), then over lengths."""
    return length_averaged(
        [spearman_rows(p, g) for p, g in zip(predicted, gold, strict=True)],
        [len(g) for g in gold],
    )


def nspr(predicted: Sequence[np.ndarray], gold: Sequence[np.ndarray]) -> float:
    """Norm (depth) Spearman: per sentence, then per sentence length (5-50), then over lengths."""
    return length_averaged(
        [spearman_rows(p, g)[0] for p, g in zip(predicted, gold, strict=True)],
        [len(g) for g in gold],
    )


def root_accuracy(
    predicted: Sequence[np.ndarray], gold: Sequence[np.ndarray], keep: Sequence[np.ndarray]
) -> float:
    """Share of sentences whose gold root (depth 0) is the shallowest predicted kept word.

    A sentence of punctuation only falls back to the shallowest word, as the reference does.
    """
    hits = 0
    for pred, true, mask in zip(predicted, gold, keep, strict=True):
        pred = np.asarray(pred, dtype=np.float64)
        guess = int(np.argmin(np.where(mask, pred, np.inf))) if mask.any() else int(pred.argmin())
        hits += int(guess == int(np.argmin(true)))
    return hits / len(gold)
