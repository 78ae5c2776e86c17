"""Attention-head analysis: word pooling, head accuracy on hand-built patterns, capture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.data.conllu import UDSentence
from probe.models import load_encoder
from probe.similarity.attention import (
    HeadStatistics,
    SentenceAttention,
    attention_maps,
    head_predictions,
    offset_baseline,
    relation_of,
    word_attention,
)


def _clark_word_word_attention(token_token: np.ndarray, words_to_tokens: list[list[int]]):
    """Clark et al.'s get_word_word_attention(mode="mean"), copied from their released code."""
    word_word = np.array(token_token)
    not_word_starts = []
    for word in words_to_tokens:
        not_word_starts += word[1:]
    for word in words_to_tokens:
        word_word[:, word[0]] = word_word[:, word].sum(axis=-1)
    word_word = np.delete(word_word, not_word_starts, -1)
    for word in words_to_tokens:
        word_word[word[0]] = np.mean(word_word[word], axis=0)
    return np.delete(word_word, not_word_starts, 0)


def _random_attention(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=generator, dtype=torch.float64), -1)


# [CLS] w1 w2a w2b w3 w4a w4b w4c [SEP]
GROUPS = torch.tensor([0, 1, 2, 2, 3, 4, 4, 4, 5])


def test_word_pooling_keeps_each_row_summing_to_one():
    attention = _random_attention((3, 4, 9, 9))
    pooled = word_attention(attention, GROUPS, 6)
    assert pooled.shape == (3, 4, 6, 6)
    assert torch.allclose(pooled.sum(-1), torch.ones(3, 4, 6, dtype=torch.float64))
    # Without the [CLS]/[SEP] columns a word's row sums to 1 minus its weight on them.
    words = pooled[..., 1:-1, 1:-1]
    special = pooled[..., 1:-1, 0] + pooled[..., 1:-1, -1]
    assert torch.allclose(words.sum(-1) + special, torch.ones_like(special))
    assert bool((words.sum(-1) < 1).all())


def test_word_pooling_equals_clark_et_al_released_code():
    attention = _random_attention((9, 9), seed=1)
    words_to_tokens = [[0], [1], [2, 3], [4], [5, 6, 7], [8]]
    expected = _clark_word_word_attention(attention.numpy(), words_to_tokens)
    assert np.allclose(word_attention(attention, GROUPS, 6).numpy(), expected)


def test_head_prediction_ignores_the_word_itself():
    words = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])
    assert head_predictions(words).tolist() == [1, 0, 1]


# "The cat sat on the mat ." with its UD tree; one subword per word.
SENTENCE = UDSentence(
    sent_id="t",
    text=None,
    words=("The", "cat", "sat", "on", "the", "mat", "."),
    upos=("DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"),
    xpos=("DT", "NN", "VBD", "IN", "DT", "NN", "."),
    heads=(2, 3, 0, 6, 6, 3, 3),
    deprels=("det", "nsubj", "root", "case", "det", "obl", "punct"),
)


def _hand_built_attention() -> SentenceAttention:
    """Two layers x two heads over [CLS] + 7 words + [SEP] (one token per word).

    Layer 1 head 0: every word attends to its gold head (the root to [SEP]), so it is right on
    every scored word. Layer 1 head 1: every token attends to the next token (offset +1). Layer 2
    head 0: all weight on [SEP]. Layer 2 head 1: every word attends to its head only for ``det``
    and otherwise to the previous word (offset -1).
    """
    n = 9
    maps = torch.zeros(2, 2, n, n, dtype=torch.float64)
    for word, head in enumerate(SENTENCE.heads, start=1):
        maps[0, 0, word, head if head else n - 1] = 1.0
        det = SENTENCE.deprels[word - 1] == "det"
        maps[1, 1, word, head if det else word - 1] = 1.0
    for token in range(n):
        maps[0, 1, token, min(token + 1, n - 1)] = 1.0
        maps[1, 0, token, n - 1] = 1.0
    maps[0, 0, 0, 0] = maps[0, 0, n - 1, n - 1] = 1.0  # [CLS] and [SEP] rows: themselves
    maps[1, 1, 0, 0] = maps[1, 1, n - 1, n - 1] = 1.0
    return SentenceAttention(index=0, tokens=maps, groups=torch.arange(n), n_words=7)


def _value(table, metric, layer, head, relation=None):
    rows = table[(table.metric == metric) & (table.layer == layer) & (table["head"] == head)]
    if relation is not None:
        rows = rows[rows.relation == relation]
    assert len(rows) == 1
    return float(rows.value.iloc[0])


def test_hand_built_attention_pattern_gives_the_expected_head_accuracy():
    stats = HeadStatistics(n_layers=2, n_heads=2)
    stats.add(_hand_built_attention(), SENTENCE)
    table = stats.table()
    # the gold-head head is right on all 6 scored words (the root is not scored)
    assert _value(table, "dep_accuracy", 1, 0, "all") == 1.0
    # the next-word head: heads at +1 are The->cat, cat->sat, the->mat; on->the is wrong
    assert _value(table, "dep_accuracy", 1, 1, "det") == 1.0
    assert _value(table, "dep_accuracy", 1, 1, "nsubj") == 1.0
    assert _value(table, "dep_accuracy", 1, 1, "case") == 0.0
    assert _value(table, "dep_accuracy", 1, 1, "all") == pytest.approx(3 / 6)
    # all-[SEP] head: no word's most-attended *word* is its head except by the leftmost tie
    assert _value(table, "attn_sep", 2, 0) == 1.0
    assert _value(table, "attn_cls", 2, 0) == 0.0
    # det right by construction; punct "." attends to "mat" (previous word), its head is "sat"
    assert _value(table, "dep_accuracy", 2, 1, "det") == 1.0
    assert _value(table, "dep_accuracy", 2, 1, "punct") == 0.0
    assert _value(table, "dep_accuracy", 2, 1, "obl") == 0.0
    # one-hot rows have zero entropy; punctuation gets the weight of the word before "."
    assert _value(table, "entropy", 1, 0) == pytest.approx(0.0, abs=1e-9)
    assert _value(table, "attn_punct", 1, 1) == pytest.approx(1 / 9)
    uniform = table[table.metric == "entropy_uniform"].value.iloc[0]
    assert uniform == pytest.approx(np.log(9))


def test_offset_baseline_counts_heads_k_words_away():
    frame = offset_baseline([SENTENCE]).set_index(["relation", "offset"])
    assert frame.loc[("det", 1), "accuracy"] == 1.0  # The->cat, the->mat
    assert frame.loc[("case", 2), "accuracy"] == 1.0  # on->mat
    assert frame.loc[("punct", -4 + 1), "accuracy"] == 0.0  # "." -> sat is 4 words back
    assert frame.loc[("all", 1), "n"] == 6  # the root is not scored
    assert frame.loc[("all", 1), "accuracy"] == pytest.approx(3 / 6)  # The, cat, the


def test_relation_is_the_universal_part_of_the_label():
    assert relation_of("nsubj:pass") == "nsubj"
    assert relation_of("det") == "det"


def test_captured_attention_equals_the_model_on_each_sentence_alone(tiny_model_dir):
    encoder = load_encoder(str(tiny_model_dir), attn_implementation="eager")
    sentences = [["Hello", "unbelievable", "world"], ["a"], ["tokenization", "is", "fun", "!"]]
    maps = sorted(
        attention_maps(encoder.model, encoder.tokenizer, sentences, batch_tokens=64),
        key=lambda m: m.index,
    )
    assert [m.index for m in maps] == [0, 1, 2]
    for attention, words in zip(maps, sentences, strict=True):
        batch = encoder.tokenizer([words], is_split_into_words=True, return_tensors="pt")
        with torch.inference_mode():
            expected = torch.stack(encoder.model(**batch, output_attentions=True).attentions)
        assert torch.allclose(attention.tokens, expected[:, 0], atol=1e-5)
        word_ids = batch.word_ids(0)
        groups = [0 if w is None else w + 1 for w in word_ids]
        groups[-1] = len(words) + 1
        assert attention.groups.tolist() == groups
        assert attention.n_words == len(words)


def test_attention_capture_refuses_a_fused_attention_kernel(tiny_model_dir):
    encoder = load_encoder(str(tiny_model_dir), attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        next(attention_maps(encoder.model, encoder.tokenizer, [["a"]]))


def test_sentences_over_the_model_limit_are_skipped_and_reported(tiny_model_dir):
    encoder = load_encoder(str(tiny_model_dir), attn_implementation="eager")
    skipped: list[int] = []
    long = ["word"] * 100  # the tiny model takes 64 positions
    maps = list(
        attention_maps(encoder.model, encoder.tokenizer, [["a"], long, ["b"]], skipped=skipped)
    )
    assert sorted(m.index for m in maps) == [0, 2]
    assert skipped == [1]


def test_reverse_direction_finds_heads_that_attend_to_their_dependents():
    # Each word spreads its attention evenly over its dependents (no dependents: all on [SEP]):
    # the dependent -> head direction finds nothing, the head -> dependent direction everything.
    n = 9
    maps = torch.zeros(1, 1, n, n, dtype=torch.float64)
    for word in range(1, 8):
        dependents = [d for d, h in enumerate(SENTENCE.heads, start=1) if h == word]
        for d in dependents:
            maps[0, 0, word, d] = 1.0 / len(dependents)
        if not dependents:
            maps[0, 0, word, n - 1] = 1.0
    maps[0, 0, 0, 0] = maps[0, 0, n - 1, n - 1] = 1.0
    stats = HeadStatistics(n_layers=1, n_heads=1)
    stats.add(SentenceAttention(index=0, tokens=maps, groups=torch.arange(n), n_words=7), SENTENCE)
    table = stats.table()
    assert _value(table, "dep_accuracy_reverse", 1, 0, "all") == 1.0
    assert _value(table, "dep_accuracy", 1, 0, "all") < 0.5
