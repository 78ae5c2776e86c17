"""STS evaluation: cosine similarity of sentence-vector pairs against gold scores.

Tasks (names used in results tables) map to registered datasets:

=========  ================  ==========================================================
task       dataset           splits
=========  ================  ==========================================================
``stsb``   ``stsbenchmark``  train 5,749 / dev 1,500 / test 1,379 pairs, gold 0-5
``sickr``  ``sick``          train 4,439 / dev (TRIAL) 495 / test 4,906 pairs, gold 1-5
=========  ================  ==========================================================

Scores are Spearman and Pearson correlations times 100, as reported in the STS literature
(SentEval, SBERT, BERT-whitening, MTEB). Cosine similarity is invariant to the length of each
vector, so L2-normalising the vectors first (as sentence-transformers' ``Normalize`` module does)
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from probe.data import PairFile, load_pair_file, read_sts

__all__ = ["STS_TASKS", "STSData", "cosine_similarity", "load_sts", "sts_scores"]

STS_TASKS = {"stsb": "stsbenchmark", "sickr": "sick"}


@dataclass(frozen=True)
class STSData:
    """One split of an STS task as parallel tuples.

    Attributes
    ----------
    sentences1, sentences2 : tuple of str, each of length n_pairs
    scores : float array of shape (n_pairs,)
    """

    task: str
    split: str
    sentences1: tuple[str, ...]
    sentences2: tuple[str, ...]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def load_sts(task: str | PairFile, split: str, limit: int | None = None, seed: int = 0) -> STSData:
    """Read a split of ``stsb``, ``sickr`` or the user's pairs (:class:`PairFile`, its missing
    splits carved with ``seed``); ``limit`` keeps the first ``limit`` pairs."""
    if isinstance(task, PairFile):
        pairs = load_pair_file(task, seed=seed)[0][split][:limit]
        name = task.name
    elif task in STS_TASKS:
        pairs = read_sts(STS_TASKS[task], split)[:limit]
        name = task
    else:
        raise ValueError(f"unknown STS task {task!r}; use one of {', '.join(STS_TASKS)}")
    return STSData(
        task=name,
        split=split,
        sentences1=tuple(p.sentence1 for p in pairs),
        sentences2=tuple(p.sentence2 for p in pairs),
        scores=np.array([p.score for p in pairs], dtype=np.float64),
    )


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of ``a`` and ``b``, both of shape (n, d); shape (n,). Zero rows give 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("nd,nd->n", a, b)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def sts_scores(a: np.ndarray, b: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson x 100 between ``cosine(a_i, b_i)`` and ``gold``.

    >>> a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    >>> b = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    >>> sts_scores(a, b, np.array([5.0, 2.5, 0.0]))["spearman"]
    100.0
    """
    similarity = cosine_similarity(a, b)
    if np.ptp(similarity) == 0 or np.ptp(gold) == 0:
        # A constant side (e.g. every vector identical) has no defined correlation.
        return {"spearman": float("nan"), "pearson": float("nan")}
    return {
        "spearman": 100.0 * float(stats.spearmanr(similarity, gold).statistic),
        "pearson": 100.0 * float(stats.pearsonr(similarity, gold).statistic),
    }
