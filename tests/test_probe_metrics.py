"""Metrics: accuracy / macro-F1 agree with sklearn, the SemEval-2010 Task 8 score agrees with the
official Perl scorer's arithmetic, and the vectorised bootstrap equals the naive one."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from probe.probes.metrics import (
    METRICS,
    accuracy,
    bootstrap_ci,
    get_metric,
    macro_f1,
    semeval2010_official_f1,
)

DATA_DIR = Path(
    os.environ.get("PROBE_DATA_DIR", Path(__file__).parents[1] / ".." / "shared" / "data")
)
SEMEVAL_TEST = DATA_DIR / "semeval2010_task8" / "TEST_FILE_FULL.TXT"

RELATIONS = [
    "Cause-Effect", "Component-Whole", "Content-Container", "Entity-Destination", "Entity-Origin",
    "Instrument-Agency", "Member-Collection", "Message-Topic", "Product-Producer",
]  # fmt: skip
LABELS_19 = ["Other"] + [f"{r}({d})" for r in RELATIONS for d in ("e1,e2", "e2,e1")]


def perl_scorer_reference(gold, pred) -> float:
    """Line-by-line Python transcription of semeval2010_task8_scorer-v1.2.pl, evaluation (iii).

    Kept deliberately naive (dicts, loops over examples) so it can be compared with the Perl
    source by eye: steps 2.4 (confusion with WRONG_DIR), 3.2 (answer counts), 8.3 (P/R/F1 with
    wrong directions added to the precision denominator) and 10 (mean over non-Other answer
    labels). Returns a fraction; the scorer prints x 100.
    """

    def no_dir(label):
        return "_Other" if label == "Other" else re.sub(r"\(e[12],e[12]\)$", "", label)

    conf = defaultdict(lambda: defaultdict(int))
    proposed = defaultdict(int)
    answer = defaultdict(int)
    for g, p in zip(gold, pred, strict=True):
        g_nd, p_nd = no_dir(g), no_dir(p)
        if p == g:
            conf[p_nd][g_nd] += 1
            proposed[p_nd] += 1
        elif p_nd == g_nd:
            conf["WRONG_DIR"][g_nd] += 1
            proposed["WRONG_DIR"] += 1
        else:
            conf[p_nd][g_nd] += 1
            proposed[p_nd] += 1
    for g in gold:
        answer[no_dir(g)] += 1
    macro_f1_sum, n_labels = 0.0, 0
    for label in sorted(answer):
        wrong_dir = conf["WRONG_DIR"][label]
        p = (
            0
            if proposed[label] == 0
            else 100.0 * conf[label][label] / (proposed[label] + wrong_dir)
        )
        r = 0 if answer[label] == 0 else 100.0 * conf[label][label] / answer[label]
        f1 = 0 if p + r == 0 else 2 * p * r / (p + r)
        if label != "_Other":
            macro_f1_sum += f1
            n_labels += 1
    return macro_f1_sum / n_labels / 100.0


def random_semeval(n: int, rng: np.random.Generator, p_right: float = 0.5):
    gold = rng.choice(LABELS_19, size=n)
    noise = rng.choice(LABELS_19, size=n)
    flip = np.array([re.sub(r"e1,e2|e2,e1", lambda m: "e2,e1" if m[0] == "e1,e2" else "e1,e2", g)
                     for g in gold])  # fmt: skip
    u = rng.random(n)
    pred = np.where(u < p_right, gold, np.where(u < p_right + 0.15, flip, noise))
    return gold, pred


# ------------------------------------------------------------------------------------------
# accuracy and macro-F1
# ------------------------------------------------------------------------------------------


def test_accuracy_and_macro_f1_match_sklearn_per_layer():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 500)
    pred = np.where(
        rng.random((3, 500)) < 0.6, y, rng.integers(0, 8, (3, 500))
    )  # labels 6, 7 only predicted
    np.testing.assert_allclose(accuracy(y, pred), [accuracy_score(y, p) for p in pred])
    np.testing.assert_allclose(macro_f1(y, pred), [f1_score(y, p, average="macro") for p in pred])
    assert macro_f1(y, pred[1]) == pytest.approx(f1_score(y, pred[1], average="macro"))
    assert isinstance(accuracy(y, pred[0]), float)


def test_macro_f1_hand_computed():
    # label a: tp=1, gold=2, pred=1 -> F1 = 2*1/(2+1) = 2/3
    # label b: tp=1, gold=1, pred=1 -> F1 = 1
    # label c: tp=0, gold=0, pred=1 -> F1 = 0 (predicted, never right)  => mean (2/3 + 1 + 0) / 3
    assert macro_f1(["a", "a", "b"], ["a", "c", "b"]) == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_string_labels_work_and_shapes_are_checked():
    assert accuracy(np.array(["x", "y"]), np.array(["x", "x"])) == 0.5
    with pytest.raises(ValueError, match="y_pred must have shape"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="unknown metric"):
        get_metric("f2")
    assert set(METRICS) == {"accuracy", "macro_f1", "semeval2010_official_f1"}


# ------------------------------------------------------------------------------------------
# SemEval-2010 Task 8 official score
# ------------------------------------------------------------------------------------------


def test_semeval_hand_computed_wrong_direction_counts_against_precision_and_recall():
    pairs = [  # (gold, predicted)
        ("Cause-Effect(e1,e2)", "Cause-Effect(e1,e2)"),  # 0 right
        ("Cause-Effect(e2,e1)", "Cause-Effect(e1,e2)"),  # 1 right relation, wrong direction
        ("Cause-Effect(e1,e2)", "Other"),  # 2 missed
        ("Component-Whole(e1,e2)", "Component-Whole(e1,e2)"),  # 3 right
        ("Component-Whole(e2,e1)", "Cause-Effect(e2,e1)"),  # 4 wrong relation
        ("Other", "Component-Whole(e1,e2)"),  # 5 false alarm
        ("Other", "Other"),  # 6 right, but Other is never averaged
    ]
    gold, pred = zip(*pairs, strict=True)
    # Cause-Effect:    correct = 1 (#0; #1 has the wrong direction)
    #                  predicted as C-E in any direction = 3 (#0, #1, #4); gold C-E = 3 (#0, #1, #2)
    #                  P = 1/3, R = 1/3, F1 = 1/3
    # Component-Whole: correct = 1 (#3); predicted = 2 (#3, #5); gold = 2 (#3, #4)
    #                  P = 1/2, R = 1/2, F1 = 1/2
    # Other is not averaged.  Official = (1/3 + 1/2) / 2 = 5/12
    assert semeval2010_official_f1(gold, pred) == pytest.approx(5 / 12)
    assert perl_scorer_reference(gold, pred) == pytest.approx(5 / 12)
    # Scored without direction (#1 right), C-E would be P = 2/3, R = 2/3: the score must differ.
    assert semeval2010_official_f1(gold, pred) < (2 / 3 + 1 / 2) / 2


def test_semeval_averages_only_relations_in_the_gold_labels():
    gold = ["Entity-Destination(e1,e2)", "Member-Collection(e1,e2)"]
    pred = ["Entity-Destination(e1,e2)", "Message-Topic(e1,e2)"]
    # Entity-Destination: correct 1, predicted 1, gold 1 -> F1 = 1
    # Member-Collection:  correct 0, predicted 0 -> P = 0, R = 0/1 = 0 -> F1 = 0
    # Message-Topic is predicted but absent from gold: not averaged (as in the Perl scorer).
    # Official = (1 + 0) / 2 = 0.5
    assert semeval2010_official_f1(gold, pred) == pytest.approx(0.5)
    # Only the wrong direction ever predicted: correct 0 -> F1 = 0.
    assert semeval2010_official_f1(["Entity-Origin(e1,e2)"], ["Entity-Origin(e2,e1)"]) == 0.0


def test_semeval_equals_perl_scorer_transcription_on_random_predictions():
    rng = np.random.default_rng(7)
    for n in (5, 40, 400):
        gold, pred = random_semeval(n, rng)
        assert semeval2010_official_f1(gold, pred) == pytest.approx(
            perl_scorer_reference(gold, pred)
        )


def test_semeval_is_not_the_18_way_macro_f1():
    rng = np.random.default_rng(3)
    gold, pred = random_semeval(300, rng)
    eighteen = [label for label in LABELS_19 if label != "Other"]
    sklearn_18 = f1_score(gold, pred, labels=eighteen, average="macro")
    assert abs(semeval2010_official_f1(gold, pred) - sklearn_18) > 1e-3


def test_semeval_layers_and_label_validation():
    rng = np.random.default_rng(4)
    gold, pred_a = random_semeval(100, rng)
    _, pred_b = random_semeval(100, rng)
    both = semeval2010_official_f1(gold, np.stack([pred_a, pred_b]))
    assert both.shape == (2,)
    assert both[1] == pytest.approx(semeval2010_official_f1(gold, pred_b))
    with pytest.raises(ValueError, match="not a SemEval-2010 Task 8 label"):
        semeval2010_official_f1(["Cause-Effect"], ["Other"])
    with pytest.raises(ValueError, match="label strings"):
        semeval2010_official_f1([1, 2], [1, 2])


def _read_semeval_gold(path: Path) -> list[str]:
    lines = path.read_text(encoding="ascii").splitlines()
    return [lines[i + 1].strip() for i in range(0, len(lines), 4) if lines[i].strip()]


@pytest.mark.skipif(not SEMEVAL_TEST.exists(), reason="SemEval-2010 Task 8 data not available")
def test_semeval_on_the_official_test_labels():
    gold = np.array(_read_semeval_gold(SEMEVAL_TEST))
    assert len(gold) == 2717 and set(gold) == set(LABELS_19)
    assert semeval2010_official_f1(gold, gold) == 1.0
    assert semeval2010_official_f1(gold, np.full(gold.shape, "Other")) == 0.0
    flipped = np.array([g.replace("e1,e2", "X").replace("e2,e1", "e1,e2").replace("X", "e2,e1")
                        for g in gold])  # fmt: skip
    is_other = gold == "Other"
    # Every relation has the right type but the wrong direction: no relation is ever correct.
    assert semeval2010_official_f1(gold, np.where(is_other, gold, flipped)) == 0.0
    rng = np.random.default_rng(0)
    u = rng.random(gold.shape)
    noisy = np.where(u < 0.6, gold, np.where(u < 0.75, flipped, rng.choice(LABELS_19, gold.shape)))
    assert semeval2010_official_f1(gold, noisy) == pytest.approx(perl_scorer_reference(gold, noisy))


# ------------------------------------------------------------------------------------------
# bootstrap
# ------------------------------------------------------------------------------------------


def _layered_predictions(n=600, n_layers=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    hit = rng.random((n_layers, n)) < np.linspace(0.5, 0.9, n_layers)[:, None]
    return y, np.where(hit, y, rng.integers(0, 5, (n_layers, n)))


@pytest.mark.parametrize("name", ["accuracy", "macro_f1"])
def test_vectorised_bootstrap_equals_naive_resampling(name):
    y, pred = _layered_predictions()
    sk = {"accuracy": accuracy_score, "macro_f1": lambda a, b: f1_score(a, b, average="macro")}
    # Same seed -> same resamples; the named path must reproduce the per-resample sklearn path.
    fast = bootstrap_ci(y, pred, name, n_boot=60, seed=5)
    slow = bootstrap_ci(y, pred, sk[name], n_boot=60, seed=5)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    groups = np.arange(len(y)) // 7
    fast = bootstrap_ci(y, pred, name, n_boot=60, seed=5, groups=groups)
    slow = bootstrap_ci(y, pred, sk[name], n_boot=60, seed=5, groups=groups)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_vectorised_semeval_bootstrap_equals_perl_transcription():
    rng = np.random.default_rng(2)
    gold, pred = random_semeval(300, rng)
    fast = bootstrap_ci(gold, pred, "semeval2010_official_f1", n_boot=40, seed=1)
    slow = bootstrap_ci(gold, pred, perl_scorer_reference, n_boot=40, seed=1)
    assert fast == pytest.approx(slow, abs=1e-12)


def test_bootstrap_is_seeded_paired_across_layers_and_brackets_the_estimate():
    y, pred = _layered_predictions()
    low, high = bootstrap_ci(y, pred, "accuracy", n_boot=300, seed=0)
    assert low.shape == high.shape == (3,)
    point = accuracy(y, pred)
    assert np.all(low < point) and np.all(point < high)
    # Layer i of the 2-D call uses the same resamples as a 1-D call with the same seed.
    assert bootstrap_ci(y, pred[2], "accuracy", n_boot=300, seed=0) == (low[2], high[2])
    again = bootstrap_ci(y, pred, "accuracy", n_boot=300, seed=0)
    np.testing.assert_array_equal(again, (low, high))
    other_seed = bootstrap_ci(y, pred, "accuracy", n_boot=300, seed=1)
    assert not np.array_equal(other_seed[0], low)


def test_bootstrap_width_shrinks_like_one_over_root_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (400, 6400):
        y = np.zeros(n, dtype=int)
        pred = (rng.random(n) < 0.3).astype(int)  # accuracy ~0.7
        low, high = bootstrap_ci(y, pred, "accuracy", n_boot=400, seed=0)
        widths.append(high - low)
    # 16x more data -> ~4x narrower (binomial: 2 * 1.96 * sqrt(.21 / n) = 0.045 and 0.011)
    assert widths[0] / widths[1] == pytest.approx(4.0, rel=0.25)


def test_resampling_sentences_widens_the_interval_when_errors_cluster_by_sentence():
    rng = np.random.default_rng(0)
    n_sentences, words = 100, 20
    sentence = np.repeat(np.arange(n_sentences), words)
    y = np.zeros(n_sentences * words, dtype=int)
    sentence_right = rng.random(n_sentences) < 0.7  # a whole sentence is right or wrong
    pred = np.where(sentence_right[sentence], 0, 1)
    low_w, high_w = bootstrap_ci(y, pred, "accuracy", n_boot=400, seed=0)
    low_s, high_s = bootstrap_ci(y, pred, "accuracy", n_boot=400, seed=0, groups=sentence)
    # Word resampling pretends 2000 independent trials; there are really 100.
    assert (high_s - low_s) > 3 * (high_w - low_w)


def test_bootstrap_rejects_bad_arguments():
    y, pred = _layered_predictions(n=20)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(y, pred, alpha=1.5)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(y, pred, "auc")
    with pytest.raises(ValueError, match="groups must have shape"):
        bootstrap_ci(y, pred, groups=np.arange(3))


def test_bootstrap_accuracy_by_matrix_product_equals_per_resample_scoring_exactly():
    # The accuracy path counts hits with one matrix product; the callable path rescores every
    # resample from scratch. Same resamples, integer counts: the intervals must agree exactly.
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random((3, 400)) < 0.7, y_true, rng.integers(0, 5, (3, 400)))
    groups = np.repeat(np.arange(80), 5)
    fast = bootstrap_ci(y_true, y_pred, "accuracy", n_boot=200, seed=3, groups=groups)
    slow = bootstrap_ci(
        y_true, y_pred, lambda t, p: float(np.mean(t == p)), n_boot=200, seed=3, groups=groups
    )
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
