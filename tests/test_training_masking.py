"""Dynamic MLM masking: target rate, the 80/10/10 split, special tokens, whole words, seeding."""

from __future__ import annotations

import pytest
import torch

from probe.training.masking import IGNORE_INDEX, Masker
from probe.training.wordpiece import wordpiece_tokenizer

TEXT = [
    "the unbelievable lobsters were walking along the shore",
    "claws and antennae grow",
    "walking lobsters grow unbelievable claws",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return wordpiece_tokenizer(TEXT, vocab_size=45, min_frequency=1)


def _batch(tokenizer, n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(
        [TEXT[i % 3] for i in range(n)],
        [TEXT[(i + 1) % 3] for i in range(n)],
        padding=True,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    return enc["input_ids"], enc["special_tokens_mask"]


@pytest.mark.parametrize("whole_word", [False, True])
def test_fifteen_percent_of_tokens_are_targets_split_80_10_10(tokenizer, whole_word: bool) -> None:
    ids, special = _batch(tokenizer)
    inputs, labels = Masker(tokenizer, 0.15, whole_word=whole_word)(
        ids, special, torch.Generator().manual_seed(0)
    )
    targets = labels != IGNORE_INDEX
    assert torch.equal(labels[targets], ids[targets])
    assert targets.sum() / (~special.bool()).sum() == pytest.approx(0.15, abs=0.015)
    masked = (inputs == tokenizer.mask_token_id) & targets
    unchanged = (inputs == ids) & targets
    changed = targets & ~masked & ~unchanged
    n = targets.sum()
    assert masked.sum() / n == pytest.approx(0.8, abs=0.03)
    # a random replacement can draw the original token: "unchanged" is 10% plus that chance
    assert changed.sum() / n == pytest.approx(0.1 * (1 - 1 / len(tokenizer)), abs=0.02)
    assert unchanged.sum() / n == pytest.approx(0.1, abs=0.025)
    assert torch.equal(inputs[~targets], ids[~targets])  # non-targets untouched


@pytest.mark.parametrize("whole_word", [False, True])
def test_special_tokens_and_padding_are_never_targets(tokenizer, whole_word: bool) -> None:
    ids, special = _batch(tokenizer)
    _, labels = Masker(tokenizer, 0.5, whole_word=whole_word)(
        ids, special, torch.Generator().manual_seed(1)
    )
    assert (labels[special.bool()] == IGNORE_INDEX).all()


def test_whole_word_masking_takes_every_piece_of_a_chosen_word(tokenizer) -> None:
    ids, special = _batch(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    assert any(p.startswith("##") for p in pieces), "the fixture needs multi-piece words"
    _, labels = Masker(tokenizer, 0.15, whole_word=True)(
        ids, special, torch.Generator().manual_seed(2)
    )
    targets = labels != IGNORE_INDEX
    continuation = torch.tensor(
        [[p.startswith("##") for p in tokenizer.convert_ids_to_tokens(row)] for row in ids.tolist()]
    )
    # a continuation piece is a target exactly when the piece before it is
    inside = continuation[:, 1:]
    assert torch.equal(targets[:, 1:][inside], targets[:, :-1][inside])
    assert targets[:, 1:][inside].any()


@pytest.mark.parametrize("whole_word", [False, True])
def test_masks_depend_only_on_the_generator_seed(tokenizer, whole_word: bool) -> None:
    ids, special = _batch(tokenizer, 20)
    masker = Masker(tokenizer, whole_word=whole_word)
    torch.manual_seed(123)
    first = masker(ids, special, torch.Generator().manual_seed(7))
    torch.manual_seed(456)  # the global RNG plays no part
    second = masker(ids, special, torch.Generator().manual_seed(7))
    other = masker(ids, special, torch.Generator().manual_seed(8))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[1], other[1])
