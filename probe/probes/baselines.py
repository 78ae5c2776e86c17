"""Baselines every probe accuracy is read against.

The majority-class baseline is scikit-learn's ``DummyClassifier(strategy="most_frequent")``,
which already follows the estimator contract, ignores the features (``X`` may be ``None``) and
breaks ties towards the smallest label; we only fix the strategy and give it the name the
results tables use. It has no layers: report it once per task and split.

Examples
--------
>>> import numpy as np
>>> base = MajorityClassBaseline().fit(None, np.array([0, 2, 2, 1]))
>>> base.predict(np.zeros((3, 1))).tolist()
[2, 2, 2]
>>> float(base.score(None, np.array([2, 0])))
0.5
"""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier


class MajorityClassBaseline(DummyClassifier):
    """Always predict the most frequent training label.

    A thin subclass of :class:`sklearn.dummy.DummyClassifier` with ``strategy="most_frequent"``:
    ``fit(X, y)`` (``X`` ignored, may be ``None``), ``predict(X) -> (n_samples,)``,
    ``score(X, y)`` (``X`` may be ``None``). Learned: ``classes_``, ``class_prior_``.
    """

    def __init__(self):
        super().__init__(strategy="most_frequent")

    def get_params(self, deep: bool = True) -> dict:
        # No constructor parameters: the strategy is what makes this class what it is.
        return {}


def majority_accuracy(y_train, y_eval) -> float:
    """Accuracy on ``y_eval`` of always predicting ``y_train``'s most frequent label.

    Parameters
    ----------
    y_train : array-like of shape (n_train,)
    y_eval : array-like of shape (n_eval,)

    Returns
    -------
    float
    """
    y_eval = np.asarray(y_eval)
    return float(MajorityClassBaseline().fit(None, y_train).score(None, y_eval))
