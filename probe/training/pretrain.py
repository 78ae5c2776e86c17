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
  expects). Masking is drawn per batch by :class:`probe.training.masking.Masker`.

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
    """
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
    """Turns (epoch, chunk) into a sentence pair, deterministically from the seed."""

    def __init__(self, docs: list[list[np.ndarray]], job: PretrainJob, seed: int):
        self.docs = docs
        self.nsp = job.nsp
        self.max_tokens = job.max_length - (3 if job.nsp else 2)
        self.seed = seed
        self.chunks = _chunks(docs, self.max_tokens, job.short_seq_prob, seed)
        if self.nsp and len(docs) < 2:
            raise DataError("next-sentence prediction needs at least 2 training documents")

    def __len__(self) -> int:
        return len(self.chunks)

    def __call__(self, epoch: int, index: int) -> _Instance:
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
        is_random = int(rng.random() < 0.5)
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


def _collate(tokenizer: Any, instances: Sequence[_Instance]) -> dict[str, torch.Tensor]:
    """Pad [CLS] A [SEP] (B [SEP]) inputs to the longest in the batch."""
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    seqs, types = [], []
    for inst in instances:
        ids = [cls, *inst.a.tolist(), sep]
        tt = [0] * len(ids)
        if inst.b is not None:
            ids += [*inst.b.tolist(), sep]
            tt += [1] * (len(inst.b) + 1)
        seqs.append(ids)
        types.append(tt)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    token_type_ids = torch.zeros((len(seqs), width), dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, t) in enumerate(zip(seqs, types, strict=True)):
        input_ids[i, : len(s)] = torch.tensor(s)
        token_type_ids[i, : len(s)] = torch.tensor(t)
        attention_mask[i, : len(s)] = 1
    special = (input_ids == cls) | (input_ids == sep) | (attention_mask == 0)
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": attention_mask,
        "special_tokens_mask": special,
        "next_sentence_label": torch.tensor([inst.is_random_next for inst in instances]),
    }


# --------------------------------------------------------------------------- model


class MaskedLMAndNSP(nn.Module):
    """``BertForPreTraining``'s two losses, with the MLM head applied at target positions only.

    ``forward`` returns a dict of scalars: ``loss`` (MLM + NSP), ``mlm_loss`` (mean over targets)
    and, with NSP, ``nsp_loss`` and ``nsp_correct`` (count); ``mlm_sum`` and ``n_targets`` let an
    evaluation weight batches by their number of targets.
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
        out = self.model.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        targets = labels != IGNORE_INDEX  # (batch, seq)
        scores = self.model.cls.predictions(out.last_hidden_state[targets])  # (n_targets, vocab)
        mlm_sum = F.cross_entropy(scores.float(), labels[targets], reduction="sum")
        n_targets = targets.sum()
        # clamp, not a Python branch: no host sync, and a batch without targets gives 0, not nan
        mlm_loss = mlm_sum / n_targets.clamp(min=1)
        result = {"mlm_loss": mlm_loss, "mlm_sum": mlm_sum.detach(), "n_targets": n_targets}
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


class PretrainObjective:
    """What the training loop needs for one pretraining job (see :mod:`probe.training.loop`)."""

    task = "mlm_nsp"
    main_metric = "mlm_loss"
    greater_is_better = False

    def __init__(
        self,
        job: PretrainJob,
        tokenizer: Any,
        train: list[Document],
        held: list[Document],
        seed: int,
    ):
        self.job = job
        self.tokenizer = tokenizer
        self.seed = seed
        if job.nsp is False:
            self.task = "mlm"
        train_ids = _tokenize(tokenizer, train)
        held_ids = _tokenize(tokenizer, held)
        self.pairs = _PairBuilder(train_ids, job, seed)
        if len(self.pairs) == 0:
            raise DataError(f"corpus {job.corpus}: no training text after tokenization")
        self.n_examples = len(self.pairs)
        self.n_train_tokens = int(sum(len(s) for d in train_ids for s in d))
        self.entropy = unigram_entropy(train_ids, len(tokenizer))
        self.masker = Masker(tokenizer, job.mlm_probability, whole_word=job.whole_word_mask)
        self.eval_batches = self._eval_batches(held_ids)
        config = build_config(job, tokenizer)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model: PreTrainedModel = BertForPreTraining(config)
        self.module: nn.Module = MaskedLMAndNSP(self.model, nsp=job.nsp)
        self.head_prefixes: tuple[str, ...] = ()
        self.find_unused_parameters = not job.nsp  # pooler and NSP head get no gradient

    def _eval_batches(self, held_ids: list[list[np.ndarray]]) -> list[dict[str, torch.Tensor]]:
        """Fixed held-out pairs, masked once: every evaluation sees the same inputs."""
        if not held_ids or (self.job.nsp and len(held_ids) < 2):
            return []
        pairs = _PairBuilder(held_ids, self.job, self.seed + 1)
        rng = np.random.default_rng([self.seed, 0xE7A1])
        n = min(self.job.eval_examples, len(pairs))
        chosen = np.sort(rng.choice(len(pairs), size=n, replace=False))
        generator = torch.Generator().manual_seed(self.seed + 0xE7A1)
        batches = []
        for k in range(0, n, _EVAL_BATCH):
            pairs_k = [pairs(0, int(i)) for i in chosen[k : k + _EVAL_BATCH]]
            batch = _collate(self.tokenizer, pairs_k)
            batch["input_ids"], batch["labels"] = self.masker(
                batch["input_ids"], batch.pop("special_tokens_mask"), generator
            )
            batches.append(batch)
        return batches

    def batch(self, examples: Sequence[tuple[int, int]], generator: torch.Generator) -> dict:
        """Inputs for the (epoch, chunk) ``examples``, masked with ``generator``."""
        batch = _collate(self.tokenizer, [self.pairs(e, i) for e, i in examples])
        batch["input_ids"], batch["labels"] = self.masker(
            batch["input_ids"], batch.pop("special_tokens_mask"), generator
        )
        if not self.job.nsp:
            batch.pop("next_sentence_label")
        return batch

    def n_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["attention_mask"].sum()

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = module(**batch)
        parts = {"loss": out["loss"], "mlm_loss": out["mlm_loss"]}
        if self.job.nsp:
            parts["nsp_loss"] = out["nsp_loss"]
        return parts

    @torch.no_grad()
    def evaluate(self, module: nn.Module, device: torch.device) -> dict[str, float]:
        """Held-out MLM loss (per target token), NSP loss and accuracy, and their sum."""
        if not self.eval_batches:
            return {}
        module.eval()
        mlm_sum = torch.zeros((), device=device)
        n_targets = torch.zeros((), device=device)
        nsp_sum = torch.zeros((), device=device)
        nsp_correct = torch.zeros((), device=device)
        n_pairs = 0
        for batch in self.eval_batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            if not self.job.nsp:
                batch.pop("next_sentence_label")
            out = module(**batch)
            mlm_sum += out["mlm_sum"]
            n_targets += out["n_targets"]
            size = batch["input_ids"].shape[0]
            n_pairs += size
            if self.job.nsp:
                nsp_sum += out["nsp_loss"] * size
                nsp_correct += out["nsp_correct"]
        module.train()
        mlm = (mlm_sum / n_targets.clamp(min=1)).item()
        result = {"mlm_loss": mlm, "mlm_perplexity": math.exp(min(mlm, 50.0))}
        if self.job.nsp:
            result["nsp_loss"] = (nsp_sum / n_pairs).item()
            result["nsp_accuracy"] = (nsp_correct / n_pairs).item()
            result["loss"] = result["mlm_loss"] + result["nsp_loss"]
        else:
            result["loss"] = mlm
        return result

    def baseline_rows(self) -> list[dict[str, Any]]:
        """Constant reference lines: unigram entropy of the corpus, NSP majority-label accuracy."""
        rows = [
            {"split": "train", "metric": "unigram_entropy", "value": self.entropy},
            {"split": "train", "metric": "corpus_tokens", "value": float(self.n_train_tokens)},
        ]
        if self.job.nsp and self.eval_batches:
            labels = torch.cat([b["next_sentence_label"] for b in self.eval_batches]).float()
            share = float(labels.mean())
            rows.append(
                {"split": "dev", "metric": "nsp_majority_accuracy", "value": max(share, 1 - share)}
            )
        return rows


def build_pretrain(
    job: PretrainJob, *, seed: int, tokenizer: Any | None = None
) -> PretrainObjective:
    """Read the corpus, get the tokenizer (given, reused from a spec, or trained) and the model.

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
    return PretrainObjective(job, tokenizer, train, held, seed)
