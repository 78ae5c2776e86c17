"""Masked-LM masking: choose targets and replace them, from an explicit generator.

BERT's recipe: choose 15% of the non-special tokens as prediction targets; of those, 80% become
``[MASK]``, 10% a random token and 10% stay unchanged (both shares are settings:
``mlm_probability`` and ``replacement``). Optionally whole-word masking: a word is chosen or not
as a unit (all of its WordPiece pieces together).

Dynamic masking calls the masker on every batch with a generator seeded by the step; static
masking (:mod:`probe.training.static_masking`) calls :meth:`Masker.mask_rows` with one generator
per (copy, sequence), so each copy of a sequence always gets the same mask.

Token-level masking reuses ``transformers.DataCollatorForLanguageModeling.torch_mask_tokens``
(checked in transformers 5.x: it draws targets with probability ``mlm_probability`` outside the
``special_tokens_mask`` and applies the [MASK]/random/unchanged split, given as
``mask_replace_prob`` and ``random_replace_prob``, with the collator's ``generator``).

Whole-word masking is written here because the 5.x library version is not BERT's: with
``whole_word_mask=True`` the collator warns and *forces* ``mask_replace_prob=1`` (every chosen
token becomes ``[MASK]``; no random or unchanged targets), and it finds words from gaps in the
``offset_mapping``, which the pair inputs built here do not carry. Here a word is a piece that
does not start with WordPiece's ``##`` continuation marker plus the ``##`` pieces after it (the
rule of Google's ``create_pretraining_data.py``); each word is chosen with probability
``mlm_probability`` (so each token is a target with that probability, as for token masking), and
the replacement split is drawn per token, as in Google's implementation.

Every draw takes an explicit ``torch.Generator``, so the masks of a batch depend only on the seed
the training loop derives from (job seed, step, micro-batch, process): resuming mid-epoch
reproduces them exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorForLanguageModeling

__all__ = ["Masker"]

IGNORE_INDEX = -100  # label of positions that are not prediction targets (cross-entropy ignores)


class Masker:
    """Apply BERT's dynamic masking to padded batches of token ids.

    Parameters
    ----------
    tokenizer : a fast BERT-style tokenizer (``mask_token``, ``##`` continuation pieces).
    mlm_probability : share of non-special tokens chosen as targets.
    whole_word : choose whole words (all their pieces) instead of single pieces.
    replacement : shares of targets that become ``[MASK]``, a random token, or stay unchanged.
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        *,
        whole_word: bool = False,
        replacement: tuple[float, float, float] = (0.8, 0.1, 0.1),
    ):
        if abs(sum(replacement) - 1) > 1e-6 or min(replacement) < 0:
            raise ValueError(f"replacement shares must be >= 0 and sum to 1, got {replacement}")
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word = whole_word
        self.replacement = tuple(float(r) for r in replacement)
        self._collator = DataCollatorForLanguageModeling(
            tokenizer,
            mlm=True,
            mlm_probability=mlm_probability,
            mask_replace_prob=self.replacement[0],
            random_replace_prob=self.replacement[1],
        )
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self._continuation = torch.tensor([p.startswith("##") for p in pieces], dtype=torch.bool)

    def __call__(
        self, input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask a batch.

        Parameters
        ----------
        input_ids : LongTensor of shape (batch, seq); not modified.
        special_tokens_mask : tensor of shape (batch, seq), nonzero at [CLS]/[SEP]/[PAD].
        generator : the only source of randomness.

        Returns
        -------
        inputs : LongTensor of shape (batch, seq), with targets replaced.
        labels : LongTensor of shape (batch, seq), the original id at targets, -100 elsewhere.
        """
        special = special_tokens_mask.bool()
        if not self.whole_word:
            # The collator reads its `generator` attribute at each call (None = global RNG).
            self._collator.generator = generator
            try:
                return self._collator.torch_mask_tokens(
                    input_ids.clone(), special_tokens_mask=special
                )
            finally:
                self._collator.generator = None
        return self._whole_word(input_ids, special, generator)

    def _whole_word(
        self, input_ids: torch.Tensor, special: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        continuation = self._continuation[input_ids] & ~special
        previous_special = torch.nn.functional.pad(special[:, :-1], (1, 0), value=True)
        # A "##" piece right after [SEP] has no word to continue: it starts one.
        starts = ~special & (~continuation | previous_special)
        word = torch.cumsum(starts, dim=1)  # (batch, seq): word number, 0 before the first word
        chosen_word = torch.rand(word.shape[0], word.shape[1] + 1, generator=generator)
        targets = (chosen_word < self.mlm_probability).gather(1, word) & ~special
        labels = torch.where(targets, input_ids, IGNORE_INDEX)
        draw = torch.rand(input_ids.shape, generator=generator)
        random_ids = torch.randint(len(self.tokenizer), input_ids.shape, generator=generator)
        inputs = input_ids.clone()
        to_mask, to_random = self.replacement[0], self.replacement[0] + self.replacement[1]
        inputs[targets & (draw < to_mask)] = self.tokenizer.mask_token_id
        replace = targets & (draw >= to_mask) & (draw < to_random)
        inputs[replace] = random_ids[replace]
        return inputs, labels

    def mask_rows(
        self,
        input_ids: torch.Tensor,
        special_tokens_mask: torch.Tensor,
        lengths: list[int],
        generators: list[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask each row with its own generator, over its unpadded length only.

        A row's mask then depends on its tokens and its generator alone, not on the other rows
        of the batch or on how far the batch is padded: what static masking needs to give a
        sequence the same mask in every epoch. Arguments as for ``__call__``, plus the real
        ``lengths`` of the rows and one generator per row.
        """
        inputs = input_ids.clone()
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for row, (n, generator) in enumerate(zip(lengths, generators, strict=True)):
            inputs[row : row + 1, :n], labels[row : row + 1, :n] = self(
                input_ids[row : row + 1, :n], special_tokens_mask[row : row + 1, :n], generator
            )
        return inputs, labels
