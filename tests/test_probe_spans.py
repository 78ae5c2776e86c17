"""Span and pair features equal a naive per-target loop, for every pooling, block size and dtype."""

from __future__ import annotations

import numpy as np
import pytest

from probe.errors import DataError
from probe.probes.spans import pair_features, span_feature_dim, span_features, word_features


def make_cache(seed=0, n_layers=3, d=5, lengths=(4, 0, 9, 1, 13, 6, 2)):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = rng.normal(size=(n_layers, offsets[-1], d)).astype(np.float32)
    return words, offsets, np.asarray(lengths)


def random_spans(rng, lengths, n):
    sentences = rng.choice(np.flatnonzero(lengths > 0), size=n)
    starts = np.array([rng.integers(0, lengths[s]) for s in sentences])
    ends = np.array(
        [rng.integers(st + 1, lengths[s] + 1) for st, s in zip(starts, sentences, strict=True)]
    )
    return sentences, starts, ends


def naive_span(words, offsets, sentence, start, end, how):
    vectors = words[:, offsets[sentence] + start : offsets[sentence] + end].astype(np.float64)
    parts = []
    for pooling in how:
        if pooling == "mean":
            parts.append(vectors.mean(axis=1))
        else:
            parts += [vectors[:, 0], vectors[:, -1]]
    return np.concatenate(parts, axis=1)  # (n_layers, D)


@pytest.mark.parametrize(
    "how", [("mean",), ("endpoints",), ("mean", "endpoints"), ("endpoints", "mean")]
)
@pytest.mark.parametrize("block_words", [3, 8192])  # 3 < longest sentence: many blocks
def test_span_features_equal_naive_loop(how, block_words):
    words, offsets, lengths = make_cache()
    rng = np.random.default_rng(1)
    sentences, starts, ends = random_spans(rng, lengths, 50)
    targets = np.column_stack([sentences, starts, ends])
    got = span_features(words, offsets, targets, how=how, block_words=block_words)
    want = np.stack([naive_span(words, offsets, *t, how) for t in targets], axis=1)
    assert got.dtype == np.float32
    assert got.shape == (3, 50, span_feature_dim(5, how))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("product", [False, True])
def test_pair_features_equal_naive_loop(product):
    words, offsets, lengths = make_cache(seed=2)
    rng = np.random.default_rng(3)
    sentences, s1, e1 = random_spans(rng, lengths, 40)
    s2 = np.array([rng.integers(0, lengths[s]) for s in sentences])
    e2 = np.array([rng.integers(a + 1, lengths[s] + 1) for a, s in zip(s2, sentences, strict=True)])
    targets = np.column_stack([sentences, s1, e1, s2, e2])
    how = ("mean", "endpoints")
    got = pair_features(words, offsets, targets, how=how, product=product, block_words=4)
    rows = []
    for sent, a, b, c, d in targets:
        r1 = naive_span(words, offsets, sent, a, b, how)
        r2 = naive_span(words, offsets, sent, c, d, how)
        rows.append(np.concatenate([r1, r2] + ([r1 * r2] if product else []), axis=1))
    want = np.stack(rows, axis=1)
    assert got.shape == (3, 40, span_feature_dim(5, how, n_spans=2, product=product))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_float16_memmap_input_gives_float32_features(tmp_path):
    words, offsets, _ = make_cache(seed=4)
    path = tmp_path / "words.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=words.shape)
    mm[:] = words
    mm.flush()
    cache = np.memmap(path, dtype=np.float16, mode="r", shape=words.shape)
    targets = np.array([[0, 1, 4], [4, 0, 13], [6, 1, 2]])
    got = span_features(cache, offsets, targets)
    want = span_features(np.asarray(cache, dtype=np.float32), offsets, targets)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_means_stay_exact_far_into_a_long_cache():
    # A float32 running sum over 400k words of magnitude ~1000 would reach 4e8 and lose the
    # low digits of a short span's mean; per-block float64 sums must not.
    n = 400_000
    rng = np.random.default_rng(0)
    words = (1000 + rng.random((1, n, 2))).astype(np.float32)
    offsets = np.arange(0, n + 1, 50)
    targets = np.array([[7990, 10, 13], [7999, 0, 50]])  # near the end of the cache
    got = span_features(words, offsets, targets, how=("mean",))
    for row, (s, a, b) in enumerate(targets):
        want = words[0, offsets[s] + a : offsets[s] + b].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(got[0, row], want, rtol=0, atol=1e-4)


def test_word_features_gather_single_words():
    words, offsets, _ = make_cache(seed=5)
    pairs = np.array([[0, 3], [2, 0], [4, 12]])
    got = word_features(words, offsets, pairs)
    want = words[:, offsets[pairs[:, 0]] + pairs[:, 1]]
    np.testing.assert_array_equal(got, want)
    triples = np.column_stack([pairs, pairs[:, 1] + 1])
    np.testing.assert_array_equal(word_features(words, offsets, triples), want)
    np.testing.assert_array_equal(word_features(words, offsets), words)
    with pytest.raises(ValueError, match="one-word targets"):
        word_features(words, offsets, np.array([[2, 0, 3]]))


@pytest.mark.parametrize(
    "target, match",
    [
        ([1, 0, 1], "empty or out-of-range"),  # sentence 1 has no words
        ([0, 2, 2], "empty or out-of-range"),  # empty span
        ([0, 3, 5], "empty or out-of-range"),  # end past the sentence (4 words)
        ([0, -1, 2], "empty or out-of-range"),
        ([7, 0, 1], "there are 7 sentences"),
    ],
)
def test_bad_targets_raise_data_error_naming_the_row(target, match):
    words, offsets, _ = make_cache()
    targets = np.array([[0, 0, 1], target])
    with pytest.raises(DataError, match=match):
        span_features(words, offsets, targets)
    with pytest.raises(DataError, match="target 1"):
        span_features(words, offsets, targets)


def test_bad_shapes_raise_value_error():
    words, offsets, _ = make_cache()
    with pytest.raises(ValueError, match="shape \\(n_targets, 5\\)"):
        pair_features(words, offsets, np.array([[0, 0, 1]]))
    with pytest.raises(ValueError, match="offsets must be"):
        span_features(words, offsets[:-1], np.array([[0, 0, 1]]))
    with pytest.raises(ValueError, match="how must be"):
        span_features(words, offsets, np.array([[0, 0, 1]]), how=("max",))
    with pytest.raises(ValueError, match="words must have shape"):
        span_features(words[0], offsets, np.array([[0, 0, 1]]))
