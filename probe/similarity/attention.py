"""What attention heads look at (Clark et al. 2019, "What does BERT look at?").

Attention maps are read from ``model(..., output_attentions=True)``, which needs the eager
attention kernel (``attn_implementation="eager"``; the fused SDPA kernel never forms the
weights). Load the model that way only for this analysis: eager is slower.

Per head (``layer`` 1..L: layer ``l``'s heads produce ``hidden_states[l]``; the embeddings,
layer 0, have none), over a sample of UD sentences:

- ``entropy``: mean over the attending tokens of the entropy (nats) of the head's token-level
  distribution, as Clark et al. (section 3.3); ``entropy_uniform`` is the same for uniform
  attention (the mean of log(sequence length)).
- ``attn_cls``, ``attn_sep``, ``attn_punct``: mean over the attending tokens of the weight on
  [CLS], on [SEP], and on the subwords of punctuation (UD UPOS ``PUNCT``; Clark et al. counted
  "." and ","), token level as their Figure 2.
- ``dep_accuracy`` per UD relation (the universal part of the label: ``nsubj:pass`` counts as
  ``nsubj``; ``all`` pools every relation): share of dependents whose most-attended word is their
  head, on word-level maps (below) without [CLS]/[SEP] and without attention to the word itself,
  as Clark et al.'s ``attn_head_predictor``. Root words (no head word) are not scored.
  ``dep_accuracy_reverse`` is the other direction (their ``mode="transpose"``, "head<-dep"):
  the word that attends most to the dependent is its head. Clark et al.'s Table 1 reports the
  better of the two directions per relation; :func:`probe.similarity.summary.best_heads` gives
  both.
- the fixed-offset baseline per relation: accuracy of "the head is the word ``k`` positions away"
  for ``k`` in -3..-1, 1..3 (Clark et al. report the best offset per relation).

Word-level maps (:func:`word_attention`, Clark et al.'s ``get_word_word_attention`` with
``mode="mean"``): attention *to* a word is the sum over its subwords, attention *from* a word is
the mean over its subwords. [CLS] and [SEP] stay in the map as their own rows and columns (first
and last), so every row still sums to 1; the dependency analysis then drops their rows and
columns, so a word's row there sums to 1 minus its weight on [CLS] and [SEP].
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from probe.capture import _special_ids, plan_batches, tokenize_words
from probe.data.conllu import UDSentence
from probe.runtime import autocast

__all__ = [
    "OFFSETS",
    "HeadStatistics",
    "SentenceAttention",
    "analyse_heads",
    "attention_maps",
    "head_predictions",
    "offset_baseline",
    "relation_of",
    "word_attention",
]

OFFSETS = (-3, -2, -1, 1, 2, 3)
ALL_RELATIONS = "all"


def relation_of(deprel: str) -> str:
    """The universal relation of a UD label: ``nsubj:pass`` -> ``nsubj``."""
    return deprel.split(":", 1)[0]


def word_attention(attention: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Pool token-to-token attention to word-to-word attention (Clark et al. 2019).

    Parameters
    ----------
    attention : tensor of shape (..., n_tokens, n_tokens); rows attend, columns are attended.
    groups : int tensor of shape (n_tokens,): the word (group) of each token, in 0..n_groups-1;
        every group needs at least one token.
    n_groups : number of words (here [CLS], the words, [SEP]).

    Returns
    -------
    tensor of shape (..., n_groups, n_groups): columns sum the attended word's subwords, rows
    average the attending word's subwords, so each row sums to what a token row sums to (1).

    Examples
    --------
    >>> a = torch.tensor([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    >>> word_attention(a, torch.tensor([0, 1, 1]), 2)
    tensor([[0.5000, 0.5000],
            [0.1000, 0.9000]])
    """
    counts = torch.bincount(groups, minlength=n_groups)
    if len(counts) != n_groups or bool((counts == 0).any()):
        raise ValueError(f"every one of the {n_groups} words needs at least one token")
    # index_add_ sums tokens into words without forming dense membership matrices
    # (3x faster than two matmuls on MiniLM-sized maps).
    *lead, n_tokens, _ = attention.shape
    to_words = attention.new_zeros(*lead, n_tokens, n_groups).index_add_(-1, groups, attention)
    from_words = attention.new_zeros(*lead, n_groups, n_groups).index_add_(-2, groups, to_words)
    return from_words / counts.to(attention.dtype)[:, None]


def head_predictions(words_attention: torch.Tensor) -> torch.Tensor:
    """Most-attended other word of each word, per head (Clark et al.'s ``attn_head_predictor``).

    Parameters
    ----------
    words_attention : tensor of shape (..., n_words, n_words), word-level attention without
        [CLS]/[SEP] rows and columns.

    Returns
    -------
    int tensor of shape (..., n_words): 0-based index of the predicted head of each word (the
    word itself is excluded; ties go to the leftmost word).
    """
    masked = words_attention.clone()
    masked.diagonal(dim1=-2, dim2=-1).fill_(-1.0)
    return masked.argmax(-1)


def offset_baseline(sentences: Sequence[UDSentence]) -> pd.DataFrame:
    """Accuracy of "the head is ``k`` words away" per relation and offset ``k`` in -3..3.

    Returns a frame with columns ``relation, offset, n, correct, accuracy`` (root words are not
    scored; an offset that leaves the sentence counts as wrong).
    """
    correct: dict[tuple[str, int], int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for sentence in sentences:
        for index, (head, deprel) in enumerate(zip(sentence.heads, sentence.deprels, strict=True)):
            if head == 0:
                continue
            for relation in (relation_of(deprel), ALL_RELATIONS):
                total[relation] += 1
                for k in OFFSETS:
                    correct[relation, k] += int(index + k == head - 1)
    rows = [
        {"relation": r, "offset": k, "n": total[r], "correct": correct[r, k]}
        for r in sorted(total)
        for k in OFFSETS
    ]
    frame = pd.DataFrame(rows, columns=["relation", "offset", "n", "correct"])
    frame["accuracy"] = frame["correct"] / frame["n"]
    return frame


# --------------------------------------------------------------------------- capture


@dataclass(frozen=True)
class SentenceAttention:
    """Attention of every head of one sentence.

    Attributes
    ----------
    index : position of the sentence in the input sample.
    tokens : tensor of shape (n_layers, n_heads, n_tokens, n_tokens) with [CLS]/[SEP] included.
    groups : int tensor of shape (n_tokens,): 0 for the leading special tokens, 1..n_words for
        the words' subwords, n_words + 1 for the trailing special tokens.
    """

    index: int
    tokens: torch.Tensor
    groups: torch.Tensor
    n_words: int

    def words(self) -> torch.Tensor:
        """Word-level maps of shape (n_layers, n_heads, n_words + 2, n_words + 2)."""
        return word_attention(self.tokens, self.groups, self.n_words + 2)


def attention_maps(
    model: nn.Module,
    tokenizer: object,
    sentences: Sequence[Sequence[str]],
    *,
    batch_tokens: int = 4096,
    precision: str = "auto",
    skipped: list[int] | None = None,
) -> Iterator[SentenceAttention]:
    """Token-level attention maps of every sentence, batched by length.

    ``model`` must use eager attention. A sentence longer than the model's limit is skipped (its
    index is appended to ``skipped``) rather than cut, since a cut changes every attention row.
    """
    if getattr(model.config, "_attn_implementation", "eager") != "eager":
        raise ValueError(
            "attention maps need the eager attention kernel; load the model with "
            'attn_implementation="eager"'
        )
    device = next(model.parameters()).device
    limit = int(getattr(model.config, "max_position_embeddings", 512))
    prefix, suffix = _special_ids(tokenizer)
    n_special = len(prefix) + len(suffix)
    pieces = tokenize_words(tokenizer, sentences)
    kept = [i for i, p in enumerate(pieces) if sum(map(len, p)) + n_special <= limit]
    if skipped is not None:
        skipped.extend(sorted(set(range(len(pieces))) - set(kept)))
    plan = plan_batches(
        [pieces[i] for i in kept],
        max_tokens=limit,
        batch_tokens=batch_tokens,
        pooling="mean",
        n_special=n_special,
    )
    # Kept sentences fit the limit, so window i is sentence kept[i], whole.
    first_word = np.concatenate([[0], np.cumsum([len(pieces[i]) for i in kept])])
    pad_id = tokenizer.pad_token_id or 0  # type: ignore[attr-defined]
    model.eval()
    with torch.inference_mode():
        for batch in plan.batches:
            windows = [plan.windows[i] for i in batch]
            width = max(len(w.token_ids) for w in windows) + n_special
            ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(windows), width), dtype=torch.long)
            for row, window in enumerate(windows):
                sequence = [*prefix, *window.token_ids, *suffix]
                ids[row, : len(sequence)] = torch.tensor(sequence)
                mask[row, : len(sequence)] = 1
            with autocast(device, precision):
                outputs = model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    output_attentions=True,
                )
            if not outputs.attentions:
                raise RuntimeError("the model returned no attention weights; use eager attention")
            stacked = torch.stack(outputs.attentions).float().cpu()  # (L, B, H, W, W)
            for row, (window_index, window) in enumerate(zip(batch, windows, strict=True)):
                length = len(window.token_ids) + n_special
                words = np.asarray(window.keep_words) - first_word[window_index] + 1
                n_words = len(pieces[kept[window_index]])
                groups = np.concatenate(
                    [np.zeros(len(prefix)), words, np.full(len(suffix), n_words + 1)]
                )
                yield SentenceAttention(
                    index=kept[window_index],
                    tokens=stacked[:, row, :, :length, :length].contiguous(),
                    groups=torch.from_numpy(groups).long(),
                    n_words=n_words,
                )


# --------------------------------------------------------------------------- statistics


@dataclass
class HeadStatistics:
    """Running sums of every head measure over sentences; :meth:`table` turns them into rows.

    Call :meth:`add` once per sentence with its attention and its UD annotation.
    """

    n_layers: int
    n_heads: int
    _token_rows: int = 0
    _uniform_entropy: float = 0.0
    _sums: dict[str, torch.Tensor] = field(default_factory=dict)
    _correct: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def _add_sum(self, name: str, value: torch.Tensor) -> None:
        self._sums[name] = self._sums.get(name, 0) + value.double()

    def add(self, attention: SentenceAttention, sentence: UDSentence) -> None:
        tokens, groups = attention.tokens, attention.groups
        if attention.n_words != len(sentence.words):
            raise ValueError(
                f"sentence {attention.index}: attention has {attention.n_words} words, "
                f"the annotation {len(sentence.words)}"
            )
        n_tokens = tokens.shape[-1]
        self._token_rows += n_tokens
        self._uniform_entropy += n_tokens * float(np.log(n_tokens))
        self._add_sum("entropy", torch.special.entr(tokens).sum(-1).sum(-1))  # (L, H), nats
        last = attention.n_words + 1
        punct_words = {i + 1 for i, tag in enumerate(sentence.upos) if tag == "PUNCT"}
        kinds = {
            "attn_cls": groups == 0,
            "attn_sep": groups == last,
            "attn_punct": torch.tensor([int(g) in punct_words for g in groups]),
        }
        for name, columns in kinds.items():
            self._add_sum(name, tokens[..., columns].sum(-1).sum(-1))
        words = attention.words()[..., 1:-1, 1:-1]  # drop [CLS]/[SEP] rows and columns
        heads = torch.tensor(sentence.heads) - 1  # 0-based; the root's head becomes -1
        hits = {
            "dep_accuracy": (head_predictions(words) == heads).long(),  # (L, H, n_words)
            "dep_accuracy_reverse": (head_predictions(words.transpose(-1, -2)) == heads).long(),
        }
        by_relation: dict[str, list[int]] = defaultdict(list)
        for index, (head, deprel) in enumerate(zip(sentence.heads, sentence.deprels, strict=True)):
            if head != 0:  # a root word has no head word to find
                by_relation[relation_of(deprel)].append(index)
                by_relation[ALL_RELATIONS].append(index)
        for relation, indices in by_relation.items():
            for metric, hit in hits.items():
                key = (metric, relation)
                self._correct[key] = self._correct.get(key, 0) + hit[..., indices].sum(-1)
            self._counts[relation] += len(indices)

    def table(self) -> pd.DataFrame:
        """One row per (layer, head, metric[, relation]): ``layer`` 1..L, ``head`` 0..H-1.

        Columns: ``layer, head, metric, relation, n, value``; ``n`` counts the attending tokens
        (or the scored dependents) behind the value.
        """
        if not self._token_rows:
            raise ValueError("no sentence was added")
        rows = []
        grid = [(layer, head) for layer in range(self.n_layers) for head in range(self.n_heads)]
        for name, total in self._sums.items():
            means = (total / self._token_rows).numpy()
            rows += [
                {"layer": layer + 1, "head": head, "metric": name, "relation": None,
                 "n": self._token_rows, "value": float(means[layer, head])}
                for layer, head in grid
            ]  # fmt: skip
        for (metric, relation), correct in sorted(self._correct.items()):
            n = self._counts[relation]
            accuracy = (correct.double() / n).numpy()
            rows += [
                {"layer": layer + 1, "head": head, "metric": metric, "relation": relation,
                 "n": n, "value": float(accuracy[layer, head])}
                for layer, head in grid
            ]  # fmt: skip
        rows.append(
            {"layer": None, "head": None, "metric": "entropy_uniform", "relation": None,
             "n": self._token_rows, "value": self._uniform_entropy / self._token_rows}
        )  # fmt: skip
        return pd.DataFrame(rows)


def analyse_heads(
    maps: Iterator[SentenceAttention],
    sentences: Sequence[UDSentence],
    n_layers: int,
    n_heads: int,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Every head measure over the attention ``maps`` of ``sentences`` (:class:`HeadStatistics`)."""
    stats = HeadStatistics(n_layers, n_heads)
    for attention in maps:
        stats.add(attention, sentences[attention.index])
        if progress is not None:
            progress(1)
    return stats.table()
