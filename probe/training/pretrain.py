"""Masked-LM + next-sentence-prediction pretraining of ``BertForPreTraining`` on raw text.

Data, following BERT's ``create_pretraining_data.py`` with dynamic masking:

- The corpus is read as documents of sentences (:func:`probe.data.read_documents`): a registered
  dataset (``wikitext2``: its ``valid`` split trains, ``test`` is held out, since this copy has no
  train file) or a text file / folder, of which a seeded ``held_out`` share of documents is kept
  for evaluation.
- Sentences of each document are packed once into *chunks* of about ``max_length - 3`` tokens
  (with probability ``short_seq_prob`` a shorter random target, as in BERT). A chunk is one
  training example; the number of examples per epoch is therefore fixed, so a step number maps to
  the same examples in every run, which is what makes resuming exact.
- Each time a chunk is drawn (per epoch), a generator seeded by (seed, epoch, chunk) splits it into
  segments A and B at a sentence boundary; with probability 0.5, B is replaced by a same-length run
  of sentences from another document (``next_sentence_label`` 1, else 0, as ``BertForPreTraining``
  expects). Masking is drawn per batch by :class:`probe.training.masking.Masker` (``masking:
  dynamic``), or, with ``masking: static``, once per copy of the data: epoch ``e`` feeds copy
  ``e mod dupe_factor``, whose pairs and masks are a function of (seed, copy, chunk) alone
  (:mod:`probe.training.static_masking`).
- Without NSP (``nsp: false``) a chunk is one segment ``[CLS] tokens [SEP]`` and batches carry no
  ``next_sentence_label``; ``packing: full_sentences`` packs sentences across documents instead
  (:mod:`probe.training.packing`).

Evaluation compares jobs fairly, whatever their masking settings (the pretraining ablations):

- ``dev``: a fixed set of held-out true-continuation sequences whose content is masked once by
  BERT's rule (15% targets, 80/10/10, token level) with a generator that does not depend on the
  job seed or settings. Every job with the same corpus, tokenizer and ``max_length`` is scored on
  the same tokens with the same masks; NSP jobs see them as ``[CLS] A [SEP] B [SEP]`` and MLM-only
  jobs as ``[CLS] A B [SEP]`` (each its own training layout). Metrics ``mlm_loss``,
  ``mlm_accuracy``; with NSP, ``nsp_loss``/``nsp_accuracy`` on a second fixed set of pairs, half
  of them with B from another document.
- ``train_sample``: the same construction on a fixed sample of *training* text, so that
  ``dev - train_sample`` is the generalisation gap. Static jobs add ``mlm_loss_seen_masks``: the
  loss on training sequences of copy 0 with the very masks they were trained on (what static
  masking can memorise).

The MLM head is applied only at target positions (about 15% of tokens) rather than at every
position as ``BertForPreTraining.forward`` does: same loss, several times less work in the
vocabulary projection, which dominates small models. The modules are HF's own
(``model.bert``, ``model.cls``), so the checkpoint is an ordinary ``BertForPreTraining``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch convention)
from transformers import BertConfig, BertForPreTraining, PreTrainedModel

from probe.data import DATASETS, Document, normalize_split, read_documents
from probe.errors import DataError
from probe.training.config import PretrainJob, model_sizes
from probe.training.masking import IGNORE_INDEX, Masker
from probe.training.packing import full_sentence_chunks
from probe.training.static_masking import copy_of, example_generator
from probe.training.wordpiece import wordpiece_tokenizer

__all__ = ["PretrainObjective", "build_pretrain", "unigram_entropy"]

_EVAL_BATCH = 64
# WikiText writes hyphens, decimal points and thousands separators inside numbers as " @-@ ",
# " @.@ ", " @,@ " and out-of-vocabulary words as "<unk>"; undo that so the text looks like the
# data the model is later probed on, and "<unk>" maps to the tokenizer's unknown token rather than
# to three pieces "<", "unk", ">".
_WIKITEXT_MARKS = ((" @-@ ", "-"), (" @.@ ", "."), (" @,@ ", ","))


# --------------------------------------------------------------------------- corpus


def _clean(sentence: str, unk_token: str) -> str:
    for mark, plain in _WIKITEXT_MARKS:
        sentence = sentence.replace(mark, plain)
    return sentence.replace("<unk>", unk_token)


def read_corpus(job: PretrainJob) -> tuple[list[Document], list[Document]]:
    """Training and held-out documents of a job's corpus (see module docstring).

    The held-out documents of a file or folder are a fixed pseudo-random choice that does not
    depend on the job seed: runs with different seeds train and evaluate on the same text.
    ``train_documents`` keeps the first N training documents.
    """
    train, held = _split_corpus(job)
    if job.train_documents is not None:
        if job.train_documents > len(train):
            raise DataError(
                f"corpus {job.corpus}: train_documents {job.train_documents} but only "
                f"{len(train)} training documents; lower it or remove it"
            )
        train = train[: job.train_documents]
    return train, held


def _split_corpus(job: PretrainJob) -> tuple[list[Document], list[Document]]:
    if not Path(job.corpus).exists() and job.corpus in DATASETS:
        train = read_documents(job.corpus, split=normalize_split(job.train_split))
        held = read_documents(job.corpus, split=normalize_split(job.eval_split))
    else:
        docs = read_documents(job.corpus)
        if len(docs) < 3:
            raise DataError(
                f"corpus {job.corpus}: {len(docs)} document(s); pretraining needs at least 3 "
                "(two to draw next-sentence pairs from, one held out); separate documents by a "
                "blank line"
            )
        order = np.random.default_rng(0x434F).permutation(len(docs))
        n_held = min(len(docs) - 2, max(1, round(job.held_out * len(docs))))
        held_ids = set(order[:n_held].tolist())
        train = [d for i, d in enumerate(docs) if i not in held_ids]
        held = [d for i, d in enumerate(docs) if i in held_ids]
    return train, held


def train_tokenizer(documents: Sequence[Document], job: PretrainJob) -> Any:
    """A WordPiece tokenizer learned on the training documents only (deterministic).

    See :mod:`probe.training.wordpiece` for why the vocabulary is not learned by the
    ``tokenizers`` library's trainer. WikiText's ``<unk>`` markers are left out of the counts.
    """
    texts = (_clean(s, " ") for doc in documents for s in doc)
    return wordpiece_tokenizer(
        texts,
        vocab_size=job.vocab_size,
        lowercase=job.lowercase,
        model_max_length=job.max_position_embeddings,
    )


def _tokenize(tokenizer: Any, documents: Sequence[Document]) -> list[list[np.ndarray]]:
    """Token ids of every sentence, ``[document][sentence] -> int32 array``; empties dropped."""
    flat = [_clean(s, tokenizer.unk_token) for doc in documents for s in doc]
    # One batched call: the fast tokenizer parallelises it; lengths beyond the model's limit are
    # fine here (sentences are cut when examples are built).
    ids = tokenizer(flat, add_special_tokens=False, verbose=False)["input_ids"] if flat else []
    out: list[list[np.ndarray]] = []
    k = 0
    for doc in documents:
        sents = [np.asarray(x, dtype=np.int32) for x in ids[k : k + len(doc)]]
        k += len(doc)
        sents = [s for s in sents if len(s)]
        if sents:
            out.append(sents)
    return out


def unigram_entropy(documents: Sequence[Sequence[np.ndarray]], vocab_size: int) -> float:
    """Entropy in nats of the token unigram distribution of a tokenized corpus.

    The cross-entropy of a model that ignores context and predicts the corpus frequencies, i.e.
    the baseline an MLM loss (also in nats, over non-special tokens) must beat.

    >>> round(unigram_entropy([[np.array([1, 2]), np.array([1, 2])]], 4), 4)  # two equally likely
    0.6931
    """
    counts = np.zeros(vocab_size, dtype=np.int64)
    for doc in documents:
        for sentence in doc:
            counts += np.bincount(sentence, minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _chunks(
    docs: Sequence[Sequence[np.ndarray]], max_tokens: int, short_seq_prob: float, seed: int
) -> np.ndarray:
    """Pack each document's sentences into chunks; rows ``(document, first, end)`` sentences."""
    rng = np.random.default_rng(seed)
    rows = []

    def target() -> int:
        return int(rng.integers(2, max_tokens + 1)) if rng.random() < short_seq_prob else max_tokens

    for d, sents in enumerate(docs):
        start, length, goal = 0, 0, target()
        for i, s in enumerate(sents):
            length += len(s)
            if length >= goal or i == len(sents) - 1:
                if length >= 2:  # A and B need a token each
                    rows.append((d, start, i + 1))
                start, length, goal = i + 1, 0, target()
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


@dataclass(frozen=True)
class _Instance:
    a: np.ndarray
    b: np.ndarray | None
    is_random_next: int


class _PairBuilder:
    """Turns (epoch or copy, chunk) into a training instance, deterministically from the seed.

    ``nsp``: split each chunk into segments A and B (B from another document with probability
    0.5 when ``random_next``); else one segment. ``packed``: inputs from
    :func:`probe.training.packing.full_sentence_chunks` instead of per-document chunks.
    """

    def __init__(
        self,
        docs: list[list[np.ndarray]],
        *,
        nsp: bool,
        max_tokens: int,
        short_seq_prob: float,
        seed: int,
        random_next: bool = True,
        packed_separator: int | None = None,
    ):
        self.docs = docs
        self.nsp = nsp
        self.random_next = random_next
        self.max_tokens = max_tokens
        self.seed = seed
        self.packed = (
            full_sentence_chunks(docs, max_tokens, packed_separator)
            if packed_separator is not None
            else None
        )
        self.chunks = _chunks(docs, self.max_tokens, short_seq_prob, seed)
        if self.nsp and random_next and len(docs) < 2:
            raise DataError("next-sentence prediction needs at least 2 training documents")

    @classmethod
    def for_training(cls, docs: list[list[np.ndarray]], job: PretrainJob, seed: int, sep: int):
        return cls(
            docs,
            nsp=job.nsp,
            max_tokens=job.max_length - (3 if job.nsp else 2),
            short_seq_prob=job.short_seq_prob,
            seed=seed,
            packed_separator=sep if job.packing == "full_sentences" else None,
        )

    def __len__(self) -> int:
        return len(self.packed) if self.packed is not None else len(self.chunks)

    def __call__(self, epoch: int, index: int) -> _Instance:
        if self.packed is not None:
            return _Instance(self.packed[index], None, 0)
        rng = np.random.default_rng([self.seed, epoch, index])
        d, first, end = self.chunks[index]
        sents = self.docs[d][first:end]
        if not self.nsp:
            return _Instance(np.concatenate(sents)[: self.max_tokens], None, 0)
        if len(sents) >= 2:
            cut = int(rng.integers(1, len(sents)))
            a, b = np.concatenate(sents[:cut]), np.concatenate(sents[cut:])
        else:  # one long sentence: split it inside
            tokens = sents[0]
            cut = int(rng.integers(1, len(tokens)))
            a, b = tokens[:cut], tokens[cut:]
        is_random = int(rng.random() < 0.5) if self.random_next else 0
        if is_random:
            other = int(rng.integers(len(self.docs) - 1))
            other += other >= d  # any document but this one
            start = int(rng.integers(len(self.docs[other])))
            run = np.concatenate(self.docs[other][start:])
            b = run[: max(1, len(b))]  # same length as the true B: length is no cue
        a, b = self._truncate(a, b)
        return _Instance(a, b, is_random)

    def _truncate(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Trim the longer segment first (BERT's rule). A loses tokens at its start and B at its
        # end, so the A|B junction that next-sentence prediction is about stays intact (BERT
        # trims a random end, which can leave a gap between a "true" A and B).
        limit = self.max_tokens
        if len(a) + len(b) <= limit:
            return a, b
        short = min(len(a), len(b))
        if short <= limit // 2:
            keep_a = len(a) if len(a) == short else limit - short
        else:
            keep_a = (limit + 1) // 2 if len(a) > len(b) else limit // 2
        return a[len(a) - keep_a :], b[: limit - keep_a]


def _layout(cls: int, sep: int, a: list[int], b: list[int] | None) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP] (B [SEP])`` ids and their token types."""
    ids = [cls, *a, sep]
    types = [0] * len(ids)
    if b is not None:
        ids += [*b, sep]
        types += [1] * (len(b) + 1)
    return ids, types


def _pad(rows: Sequence[Sequence[int]], fill: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _collate(tokenizer: Any, instances: Sequence[_Instance]) -> dict[str, torch.Tensor]:
    """Pad [CLS] A [SEP] (B [SEP]) inputs to the longest in the batch."""
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    laid = [
        _layout(cls, sep, inst.a.tolist(), None if inst.b is None else inst.b.tolist())
        for inst in instances
    ]
    input_ids = _pad([ids for ids, _ in laid], pad)
    token_type_ids = _pad([types for _, types in laid], 0)
    attention_mask = _pad([[1] * len(ids) for ids, _ in laid], 0)
    special = (input_ids == cls) | (input_ids == sep) | (attention_mask == 0)
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "special_tokens_mask": special,
        "next_sentence_label": torch.tensor([inst.is_random_next for inst in instances]),
    }


# --------------------------------------------------------------------------- evaluation sets

# Evaluation masks follow BERT's rule whatever the job's own settings, from a generator that does
# not depend on the job seed: every arm of an ablation is scored on the same targets.
EVAL_MLM_PROBABILITY = 0.15
EVAL_REPLACEMENT = (0.8, 0.1, 0.1)
_EVAL_SEED = 0xE7A1


def _masked_content(
    tokenizer: Any, instances: Sequence[_Instance], tag: int
) -> list[tuple[_Instance, np.ndarray, np.ndarray]]:
    """Mask the content ``A + B`` of each instance once, by BERT's rule, seeded by (tag, index).

    Returns ``(masked instance, labels of A, labels of B)`` per instance: the masks sit on the
    tokens, not on a layout, so NSP and MLM-only jobs can be fed the same masked tokens.
    """
    masker = Masker(tokenizer, EVAL_MLM_PROBABILITY, replacement=EVAL_REPLACEMENT)
    out = []
    for i, inst in enumerate(instances):
        b = inst.b if inst.b is not None else np.zeros(0, dtype=np.int64)
        content = torch.as_tensor(np.concatenate([inst.a, b]), dtype=torch.long)[None]
        generator = torch.Generator().manual_seed(_EVAL_SEED * 1_000_003 + tag * 7919 + i)
        inputs, labels = masker(content, torch.zeros_like(content, dtype=torch.bool), generator)
        inputs, labels = inputs[0].numpy(), labels[0].numpy()
        n = len(inst.a)
        masked = _Instance(inputs[:n], inputs[n:] if inst.b is not None else None, 0)
        out.append((masked, labels[:n], labels[n:]))
    return out


def _mlm_eval_batches(
    tokenizer: Any, masked: Sequence[tuple[_Instance, np.ndarray, np.ndarray]], nsp: bool
) -> list[dict[str, torch.Tensor]]:
    """Batches of pre-masked content in a job's layout: A and B as two segments, or as one."""
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    batches = []
    for k in range(0, len(masked), _EVAL_BATCH):
        ids, types, labels = [], [], []
        for inst, la, lb in masked[k : k + _EVAL_BATCH]:
            b = inst.b if inst.b is not None else np.zeros(0, dtype=np.int64)
            if nsp:
                row, tt = _layout(cls, sep, inst.a.tolist(), b.tolist())
                lab = [IGNORE_INDEX, *la.tolist(), IGNORE_INDEX, *lb.tolist(), IGNORE_INDEX]
            else:
                row, tt = _layout(cls, sep, [*inst.a.tolist(), *b.tolist()], None)
                lab = [IGNORE_INDEX, *la.tolist(), *lb.tolist(), IGNORE_INDEX]
            ids.append(row)
            types.append(tt)
            labels.append(lab)
        batch = {
            "input_ids": _pad(ids, pad),
            "token_type_ids": _pad(types, 0),
            "attention_mask": _pad([[1] * len(r) for r in ids], 0),
            "labels": _pad(labels, IGNORE_INDEX),
        }
        if nsp:
            batch["next_sentence_label"] = torch.zeros(len(ids), dtype=torch.long)
        batches.append(batch)
    return batches


def _fixed_sample(size: int, n: int, tag: int) -> list[int]:
    """``min(n, size)`` sorted indices of ``range(size)``, fixed by ``tag`` (not by a job seed)."""
    rng = np.random.default_rng([_EVAL_SEED, tag])
    return np.sort(rng.choice(size, size=min(n, size), replace=False)).tolist()


def _continuations(
    docs: list[list[np.ndarray]], job: PretrainJob, n: int, tag: int
) -> list[_Instance]:
    """``n`` fixed true-continuation pairs (A, then its real next text B) of ``docs``.

    The length budget is the NSP layout's (``max_length - 3``) for every job, so that an MLM-only
    job gets exactly the same tokens as an NSP job.
    """
    if not docs:
        return []
    pairs = _PairBuilder(
        docs,
        nsp=True,
        max_tokens=job.max_length - 3,
        short_seq_prob=job.short_seq_prob,
        seed=_EVAL_SEED + tag,
        random_next=False,
    )
    return [pairs(0, i) for i in _fixed_sample(len(pairs), n, tag)]


# --------------------------------------------------------------------------- model


class MaskedLMAndNSP(nn.Module):
    """``BertForPreTraining``'s two losses, with the MLM head applied at target positions only.

    ``forward`` returns a dict of scalars: ``loss`` (MLM, plus NSP when on), ``mlm_loss`` (mean
    over targets), and, with NSP, ``nsp_loss`` and ``nsp_correct`` (count); ``mlm_sum``,
    ``mlm_correct`` and ``n_targets`` let an evaluation weight batches by their number of
    targets. Without NSP, ``loss`` is the MLM loss alone and the NSP head is never called.
    """

    def __init__(self, model: BertForPreTraining, nsp: bool = True):
        super().__init__()
        self.model = model
        self.nsp = nsp

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        labels: torch.Tensor,
        next_sentence_label: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.nsp and next_sentence_label is None:
            raise ValueError("an NSP model needs next_sentence_label in every batch")
        if not self.nsp and next_sentence_label is not None:
            raise ValueError("an MLM-only model got next_sentence_label: the batch is an NSP one")
        out = self.model.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        targets = labels != IGNORE_INDEX  # (batch, seq)
        scores = self.model.cls.predictions(out.last_hidden_state[targets])  # (n_targets, vocab)
        mlm_sum = F.cross_entropy(scores.float(), labels[targets], reduction="sum")
        n_targets = targets.sum()
        # clamp, not a Python branch: no host sync, and a batch without targets gives 0, not nan
        mlm_loss = mlm_sum / n_targets.clamp(min=1)
        result = {
            "mlm_loss": mlm_loss,
            "mlm_sum": mlm_sum.detach(),
            "mlm_correct": (scores.argmax(-1) == labels[targets]).sum(),
            "n_targets": n_targets,
        }
        loss = mlm_loss
        if self.nsp:
            logits = self.model.cls.seq_relationship(out.pooler_output)  # (batch, 2)
            nsp_loss = F.cross_entropy(logits.float(), next_sentence_label)
            result["nsp_loss"] = nsp_loss
            result["nsp_correct"] = (logits.argmax(-1) == next_sentence_label).sum()
            loss = loss + nsp_loss
        result["loss"] = loss
        return result


def build_config(job: PretrainJob, tokenizer: Any) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2,
        **model_sizes(job),
    )


# --------------------------------------------------------------------------- objective


@torch.no_grad()
def _score(
    module: nn.Module, batches: Sequence[dict[str, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """MLM loss and accuracy per target token (and NSP per pair, if the batches have labels)."""
    totals: dict[str, torch.Tensor] = {}
    n_pairs = 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = module(**batch)
        size = batch["input_ids"].shape[0]
        n_pairs += size
        parts = {
            "mlm_sum": out["mlm_sum"],
            "mlm_correct": out["mlm_correct"],
            "n_targets": out["n_targets"],
        }
        if "nsp_loss" in out:
            parts["nsp_sum"] = out["nsp_loss"] * size
            parts["nsp_correct"] = out["nsp_correct"]
        for name, value in parts.items():
            totals[name] = totals.get(name, 0) + value.float()
    n_targets = max(float(totals["n_targets"]), 1.0)
    result = {
        "mlm_loss": float(totals["mlm_sum"]) / n_targets,
        "mlm_accuracy": float(totals["mlm_correct"]) / n_targets,
    }
    if "nsp_sum" in totals:
        result["nsp_loss"] = float(totals["nsp_sum"]) / n_pairs
        result["nsp_accuracy"] = float(totals["nsp_correct"]) / n_pairs
    return result


def _training_batch(
    job: PretrainJob,
    tokenizer: Any,
    pairs: _PairBuilder,
    masker: Masker,
    seed: int,
    examples: Sequence[tuple[int, int]],
    generator: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """Inputs for the (epoch, chunk) ``examples`` (see :meth:`PretrainObjective.batch`)."""
    if job.copies:
        keys = [(copy_of(epoch, job.copies), index) for epoch, index in examples]
        batch = _collate(tokenizer, [pairs(c, i) for c, i in keys])
        batch["input_ids"], batch["labels"] = masker.mask_rows(
            batch["input_ids"],
            batch.pop("special_tokens_mask"),
            batch["attention_mask"].sum(dim=1).tolist(),
            [example_generator(seed, c, i) for c, i in keys],
        )
    else:
        if generator is None:
            raise ValueError("dynamic masking needs a generator for every batch")
        batch = _collate(tokenizer, [pairs(e, i) for e, i in examples])
        batch["input_ids"], batch["labels"] = masker(
            batch["input_ids"], batch.pop("special_tokens_mask"), generator
        )
    if not job.nsp:
        batch.pop("next_sentence_label")
    return batch


def _eval_sets(
    job: PretrainJob,
    tokenizer: Any,
    train_ids: list[list[np.ndarray]],
    held_ids: list[list[np.ndarray]],
    seen_batch: Any,
    n_pairs: int,
) -> dict[str, list[dict[str, torch.Tensor]]]:
    """The fixed evaluation batches (module docstring): ``(split, set) -> batches``.

    ``seen_batch(examples)`` gives training batches as fed (static masking: copy 0's masks);
    ``n_pairs`` is the number of training chunks.
    """
    n = job.eval_examples
    sets: dict[str, list[dict[str, torch.Tensor]]] = {}
    held = _masked_content(tokenizer, _continuations(held_ids, job, n, tag=1), tag=1)
    if held:
        sets["dev"] = _mlm_eval_batches(tokenizer, held, job.nsp)
    if job.nsp and len(held_ids) >= 2:
        pairs = _PairBuilder(
            held_ids,
            nsp=True,
            max_tokens=job.max_length - 3,
            short_seq_prob=job.short_seq_prob,
            seed=_EVAL_SEED + 2,
        )
        instances = [pairs(0, i) for i in _fixed_sample(len(pairs), n, tag=2)]
        masked = _masked_content(tokenizer, instances, tag=2)
        batches = _mlm_eval_batches(tokenizer, masked, nsp=True)
        labels = torch.tensor([inst.is_random_next for inst in instances])
        for k, batch in enumerate(batches):
            batch["next_sentence_label"] = labels[k * _EVAL_BATCH : (k + 1) * _EVAL_BATCH]
        sets["dev_nsp"] = batches
    train = _masked_content(tokenizer, _continuations(train_ids, job, n, tag=3), tag=3)
    sets["train_sample"] = _mlm_eval_batches(tokenizer, train, job.nsp)
    if job.copies:
        # Copy 0 of training chunks exactly as fed in epochs 0, N, 2N, ...: pairs and masks.
        chosen = _fixed_sample(n_pairs, n, tag=4)
        sets["train_seen"] = [
            seen_batch([(0, i) for i in chosen[k : k + _EVAL_BATCH]])
            for k in range(0, len(chosen), _EVAL_BATCH)
        ]
    return sets


@dataclass
class PretrainObjective:
    """What the training loop needs for one pretraining job (:class:`~probe.training.objective.\
Objective`); made by :func:`build_pretrain`, which reads and tokenizes the corpus.

    Attributes
    ----------
    job, seed : the job's study section and seed.
    tokenizer, model : the tokenizer and the freshly initialised ``BertForPreTraining``.
    pairs : training instances by (epoch or copy, chunk).
    masker : draws masks of training batches.
    eval_sets : fixed evaluation batches by set (``dev``, ``dev_nsp``, ``train_sample`` ...).
    n_train_tokens, entropy : size and unigram entropy of the tokenized training corpus.
    """

    job: PretrainJob
    seed: int
    tokenizer: Any
    model: PreTrainedModel
    pairs: _PairBuilder
    masker: Masker
    eval_sets: dict[str, list[dict[str, torch.Tensor]]]
    n_train_tokens: int
    entropy: float
    main_metric = "mlm_loss"
    greater_is_better = False
    final_splits: tuple[str, ...] = ()
    head_prefixes: tuple[str, ...] = ()
    lengths: np.ndarray | None = None  # pretraining chunks are not grouped by length

    def __post_init__(self) -> None:
        self.task = "mlm_nsp" if self.job.nsp else "mlm"
        self.n_examples = len(self.pairs)
        self.copies = self.job.copies  # 0: dynamic masking
        self.module: nn.Module = MaskedLMAndNSP(self.model, nsp=self.job.nsp)
        self.find_unused_parameters = not self.job.nsp  # pooler and NSP head get no gradient

    def batch(
        self, examples: Sequence[tuple[int, int]], generator: torch.Generator | None
    ) -> dict[str, torch.Tensor]:
        """Inputs for the (epoch, chunk) ``examples``.

        Dynamic masking masks the batch with ``generator`` (fresh every step); static masking
        ignores it and gives copy ``epoch mod dupe_factor`` of each chunk its own fixed pair and
        mask.
        """
        return _training_batch(
            self.job, self.tokenizer, self.pairs, self.masker, self.seed, examples, generator
        )

    def n_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["attention_mask"].sum()

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = module(**batch)
        parts = {"loss": out["loss"], "mlm_loss": out["mlm_loss"]}
        if self.job.nsp:
            parts["nsp_loss"] = out["nsp_loss"]
        return parts

    def evaluate(
        self, module: nn.Module, device: torch.device, split: str = "dev"
    ) -> dict[str, float]:
        """Held-out MLM loss (per target token) and accuracy, NSP loss and accuracy, their sum.

        The other fixed sets are logged under their own split by :meth:`extra_evaluations`.
        """
        if "dev" not in self.eval_sets:
            return {}
        was_training = module.training
        module.eval()
        try:
            result = _score(module, self.eval_sets["dev"], device)
            result.pop("nsp_loss", None)  # every dev MLM pair is a true continuation: not NSP
            result.pop("nsp_accuracy", None)
            result["mlm_perplexity"] = math.exp(min(result["mlm_loss"], 50.0))
            if "dev_nsp" in self.eval_sets:
                nsp = _score(module, self.eval_sets["dev_nsp"], device)
                result["nsp_loss"] = nsp["nsp_loss"]
                result["nsp_accuracy"] = nsp["nsp_accuracy"]
                result["loss"] = result["mlm_loss"] + result["nsp_loss"]
            else:
                result["loss"] = result["mlm_loss"]
        finally:
            module.train(was_training)
        return result

    def extra_evaluations(self, module: nn.Module, device: torch.device) -> list[dict[str, Any]]:
        """Rows ``{split, metric, value}`` of the training-text sets (see module docstring)."""
        was_training = module.training
        module.eval()
        try:
            sample = _score(module, self.eval_sets["train_sample"], device)
            values = {"mlm_loss": sample["mlm_loss"], "mlm_accuracy": sample["mlm_accuracy"]}
            if "train_seen" in self.eval_sets:
                seen = _score(module, self.eval_sets["train_seen"], device)
                values["mlm_loss_seen_masks"] = seen["mlm_loss"]
        finally:
            module.train(was_training)
        return [{"split": "train_sample", "metric": k, "value": v} for k, v in values.items()]

    def baseline_rows(self) -> list[dict[str, Any]]:
        """Constant reference lines: unigram entropy of the corpus, NSP majority-label accuracy."""
        rows = [
            {"split": "train", "metric": "unigram_entropy", "value": self.entropy},
            {"split": "train", "metric": "corpus_tokens", "value": float(self.n_train_tokens)},
            {"split": "train", "metric": "examples_per_epoch", "value": float(self.n_examples)},
        ]
        if "dev_nsp" in self.eval_sets:
            labels = torch.cat([b["next_sentence_label"] for b in self.eval_sets["dev_nsp"]])
            share = float(labels.float().mean())
            rows.append(
                {"split": "dev", "metric": "nsp_majority_accuracy", "value": max(share, 1 - share)}
            )
        return rows


def build_pretrain(
    job: PretrainJob, *, seed: int, tokenizer: Any | None = None
) -> PretrainObjective:
    """Read and tokenize the corpus, get the tokenizer (given, reused or trained), init the model.

    ``tokenizer`` is passed when resuming (the one saved with the checkpoint), so a resumed job
    never retrains its vocabulary.
    """
    train, held = read_corpus(job)
    if tokenizer is None:
        if job.tokenizer == "train":
            tokenizer = train_tokenizer(train, job)
        else:
            from probe.models import load_tokenizer, resolve_model

            tokenizer = load_tokenizer(resolve_model(job.tokenizer))
            tokenizer.model_max_length = job.max_position_embeddings
    train_ids, held_ids = _tokenize(tokenizer, train), _tokenize(tokenizer, held)
    pairs = _PairBuilder.for_training(train_ids, job, seed, tokenizer.sep_token_id)
    if len(pairs) == 0:
        raise DataError(f"corpus {job.corpus}: no training text after tokenization")
    masker = Masker(
        tokenizer, job.mlm_probability, whole_word=job.whole_word_mask, replacement=job.replacement
    )

    def seen_batch(examples: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        return _training_batch(job, tokenizer, pairs, masker, seed, examples, None)

    eval_sets = _eval_sets(job, tokenizer, train_ids, held_ids, seen_batch, len(pairs))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForPreTraining(build_config(job, tokenizer))
    return PretrainObjective(
        job=job,
        seed=seed,
        tokenizer=tokenizer,
        model=model,
        pairs=pairs,
        masker=masker,
        eval_sets=eval_sets,
        n_train_tokens=int(sum(len(s) for d in train_ids for s in d)),
        entropy=unigram_entropy(train_ids, len(tokenizer)),
    )
