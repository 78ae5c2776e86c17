"""Hook points of six encoder families and word alignment of three tokenizer families.

Layer ``l`` captured by a hook equals ``hidden_states[l]`` for BERT, RoBERTa, DistilBERT, ELECTRA,
ALBERT (shared layers) and DeBERTa-v2 (with and without its first-layer convolution); and the
subwords assigned to each word are exactly those of the sentence as running text for WordPiece,
SentencePiece/Unigram and byte-level BPE tokenizers. Everything is tiny and built in memory.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe.capture import (
    capture_layers,
    capture_words,
    hook_points,
    position_limit,
    tokenize_words,
    word_prefix,
)
from tests.tiny_families import FAMILIES, SENTENCES, TOKENIZERS, tiny_model


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("family", FAMILIES)
def test_captured_layer_l_equals_hidden_states_l_for_every_family(family: str) -> None:
    model = tiny_model(family)
    torch.manual_seed(1)
    ids = torch.randint(5, 400, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the batch, as capture produces
    n_layers = model.config.num_hidden_layers
    assert list(hook_points(model)) == ["embed"] + [f"layers.{i}.output" for i in range(1, 4)]
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        before = _hook_count(model)  # transformers keeps its own output-recording hooks
        with capture_layers(model, range(n_layers + 1)) as store:
            model(input_ids=ids, attention_mask=mask)
            model(input_ids=ids, attention_mask=mask)  # call counts restart every forward pass
    assert _hook_count(model) == before
    assert len(reference.hidden_states) == n_layers + 1
    for layer in range(n_layers + 1):
        assert torch.equal(store[layer], reference.hidden_states[layer]), f"layer {layer}"


@pytest.mark.parametrize("family", ["albert", "albert_2groups"])
def test_shared_layers_capture_a_subset_of_layers_in_the_right_places(family: str) -> None:
    model = tiny_model(family)
    ids = torch.randint(5, 400, (1, 7))
    with torch.no_grad():
        reference = model(input_ids=ids, output_hidden_states=True).hidden_states
        with capture_layers(model, [2, 3]) as store:
            model(input_ids=ids)
    assert sorted(store) == [2, 3]
    assert torch.equal(store[2], reference[2]) and torch.equal(store[3], reference[3])
    assert not torch.equal(store[2], store[3])


def test_roberta_position_limit_leaves_room_for_its_padding_offset() -> None:
    assert position_limit(tiny_model("roberta")) == 62  # positions start at padding_idx + 1
    assert position_limit(tiny_model("bert")) == 64


@pytest.mark.parametrize("kind", list(TOKENIZERS))
def test_word_subwords_are_those_of_the_running_text(kind: str) -> None:
    tokenizer = TOKENIZERS[kind]()
    pieces = tokenize_words(tokenizer, SENTENCES)
    for words, sentence in zip(SENTENCES, pieces, strict=True):
        assert len(sentence) == len(words)
        flat = [t for word in sentence for t in word]
        # Byte-level BPE marks a word start with the space before it: the first word too.
        text = (" " if kind == "byte_bpe" else "") + " ".join(words)
        assert flat == tokenizer(text, add_special_tokens=False)["input_ids"]
        for word, ids in zip(words, sentence, strict=True):
            # WordPiece decodes "L'" as "L '" (a space between its pre-tokens).
            assert tokenizer.decode(ids).replace(" ", "") == word


@pytest.mark.parametrize(
    ("kind", "prefix"), [("wordpiece", ""), ("unigram", ""), ("byte_bpe", " ")]
)
def test_only_byte_level_tokenizers_need_a_space_before_each_word(kind: str, prefix: str) -> None:
    assert word_prefix(TOKENIZERS[kind]()) == prefix


def test_byte_level_words_keep_their_space_marker() -> None:
    tokenizer = TOKENIZERS["byte_bpe"]()
    pieces = tokenize_words(tokenizer, [["Die", "Katze"]])[0]
    assert tokenizer.convert_ids_to_tokens(pieces[1])[0].startswith("Ġ")


@pytest.mark.parametrize(
    ("kind", "family"),
    [
        ("wordpiece", "bert"),
        ("unigram", "albert"),
        ("byte_bpe", "roberta"),
        ("unigram", "deberta_v2"),
    ],
)
def test_word_vectors_equal_hidden_states_of_the_running_text(kind: str, family: str) -> None:
    tokenizer = TOKENIZERS[kind]()
    model = tiny_model(family, vocab_size=len(tokenizer))
    feats, _ = capture_words(model, tokenizer, SENTENCES, layers=[0, 3], pooling="first")
    row = 0
    for words in SENTENCES:
        text = (" " if kind == "byte_bpe" else "") + " ".join(words)
        enc = tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
        with torch.no_grad():
            hidden = model(input_ids=enc["input_ids"], output_hidden_states=True).hidden_states
        # A word's first subword is the first token ending after the space before the word
        # (SentencePiece may spell that space as a token of its own, "▁", which starts the word).
        offsets = [(a, b) for a, b in enc["offset_mapping"][0].tolist()]
        position = 0
        for w, word in enumerate(words):
            position = text.index(word, position)
            first = next(i for i, (a, b) in enumerate(offsets) if b > a and b > position - 1)
            position += len(word)
            for k, layer in enumerate([0, 3]):
                np.testing.assert_allclose(
                    feats[k, row + w].astype(np.float32),
                    hidden[layer][0, first].numpy(),
                    atol=2e-3,
                    rtol=2e-3,
                )
        row += len(words)
    assert row == feats.shape[1]
