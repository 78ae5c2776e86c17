"""Fine-tuning on sentences (SST-2), sentence pairs (SICK entailment, STS-B) and tokens (POS, NER).

The model is any model spec (:mod:`probe.models`), including ``scratch:`` and ``trained:<job>``,
loaded as ``AutoModelForSequenceClassification`` or ``AutoModelForTokenClassification``; the new
head is seeded by the job seed. Token tasks come from :func:`probe.data.load_task`: a word task
(``upos``, ``xpos``) labels every word, a span task (``ner_*``) becomes BIO tags. Only the first
piece of each word carries a label (the usual choice; the other pieces get -100). A pair task
is encoded as in BERT, ``[CLS] A [SEP] B [SEP]`` with segment ids (``token_type_ids``) 0 up to
and including the first ``[SEP]`` and 1 after it; STS-B is a regression of the 0-5 score (one
output, mean squared error), SICK a 3-class classification.

The job's strategy (frozen layers, feature-based head, scalar mix, LoRA, adapters, layer-wise
rates: :mod:`probe.training.strategies`) is applied to the model here; every evaluation adds
the relative change of each layer's pretrained weights (LoRA merged into them) and the scalar
mix's weights to the history.

Metrics count every gold word or entity of the split, so a word cut off by ``max_length`` is an
error, not a silently dropped example: POS accuracy over words, NER micro-F1 over exact entity
spans (decoded from the predicted BIO tags with the same rule as the data reader), SST-2 accuracy
over sentences or pairs, STS-B Pearson and Spearman correlations x 100 over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import transformers
from scipy.stats import pearsonr, spearmanr
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch convention)
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from probe.adaptation import pretrained_view
from probe.capture import hook_points, word_prefix
from probe.data import dataset_file, iob2_spans, load_task, read_sst2, read_sts
from probe.errors import StudyError
from probe.landscape.layers import layer_parts, relative_change
from probe.models import load_model, load_tokenizer, resolve_model
from probe.training.checkpoint import quiet_progress
from probe.training.config import PAIR_TASKS, SENTENCE_TASKS, FinetuneJob
from probe.training.masking import IGNORE_INDEX
from probe.training.strategies import Readout, apply_strategy, layer_of_parameters

__all__ = ["SICK_LABELS", "FinetuneObjective", "build_finetune", "freeze_lowest_layers"]

_EVAL_BATCH = 64
#: SICK's entailment labels, in class-id order.
SICK_LABELS = ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")


@dataclass(frozen=True)
class _Split:
    """Encoded examples of one split.

    ``features`` are tokenizer outputs (``input_ids`` ...); ``labels`` per example: an int for a
    sentence task, a list (one per piece, -100 off first pieces) for a token task. ``gold`` holds,
    per example, the label of every word (token tasks), and ``first_piece`` the piece position of
    each word's first piece or -1 when the word was cut off.
    """

    features: list[dict[str, list[int]]]
    labels: list[Any]
    gold: list[np.ndarray]
    first_piece: list[np.ndarray]


def freeze_lowest_layers(model: nn.Module, k: int) -> list[str]:
    """Freeze layers ``0..k-1`` (layer 0 = embeddings); returns the frozen hook names.

    Raises
    ------
    StudyError
        ``k`` exceeds the number of layers ``L + 1``.
    """
    points = list(hook_points(model).items())  # embed, layers.1.output, ..., in order
    if k > len(points):
        raise StudyError(
            f"freeze_layers: {k} exceeds the model's {len(points)} layers "
            f"(embeddings + {len(points) - 1} encoder layers)"
        )
    shared = {id(m) for _, m in points[:k]} & {id(m) for _, m in points[k:]}
    if shared:
        raise StudyError(
            f"freeze_layers: {k} splits layers that share weights (ALBERT); freeze none or all"
        )
    for _name, module in points[:k]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
    return [name for name, _ in points[:k]]


def _bio_tags(
    n_words: int, rows: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> list[str]:
    tags = ["O"] * n_words
    for (start, end), label in zip(rows, labels, strict=True):
        tags[start] = f"B-{names[label]}"
        for i in range(start + 1, end):
            tags[i] = f"I-{names[label]}"
    return tags


def _max_length(job: FinetuneJob, tokenizer: Any, split: str) -> int:
    if split == "train":
        return job.max_length
    # Evaluation sees whole sentences as far as the model allows.
    return min(512, int(getattr(tokenizer, "model_max_length", 512) or 512))


def _encode_sentences(
    tokenizer: Any, sentences: list[str], labels: list[int], length: int
) -> _Split:
    enc = tokenizer(sentences, truncation=True, max_length=length)
    features = [{k: enc[k][i] for k in enc} for i in range(len(sentences))]
    gold = [np.asarray([y]) for y in labels]
    return _Split(features, list(labels), gold, [np.zeros(1, dtype=np.int64)] * len(labels))


def _encode_pairs(tokenizer: Any, pairs: Sequence[Any], labels: list[Any], length: int) -> _Split:
    """``[CLS] A [SEP] B [SEP]`` with segment ids; truncation takes from the longer sentence."""
    enc = tokenizer(
        [p.sentence1 for p in pairs],
        [p.sentence2 for p in pairs],
        truncation="longest_first",
        max_length=length,
    )
    features = [{k: enc[k][i] for k in enc} for i in range(len(pairs))]
    gold = [np.asarray([y]) for y in labels]
    return _Split(features, list(labels), gold, [np.zeros(1, dtype=np.int64)] * len(labels))


def _encode_words(
    tokenizer: Any, sentences: Sequence[Sequence[str]], gold: list[np.ndarray], length: int
) -> _Split:
    # Byte-level BPE (RoBERTa) needs each word's leading space, as in running text.
    prefix = word_prefix(tokenizer)
    enc = tokenizer(
        [[prefix + w for w in s] for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=length,
    )
    features, labels, firsts = [], [], []
    for i, sent in enumerate(sentences):
        word_ids = enc.word_ids(i)
        first = np.full(len(sent), -1, dtype=np.int64)
        piece_labels = [IGNORE_INDEX] * len(word_ids)
        for pos, w in enumerate(word_ids):
            if w is not None and first[w] < 0:
                first[w] = pos
                piece_labels[pos] = int(gold[i][w])
        features.append({k: enc[k][i] for k in enc})
        labels.append(piece_labels)
        firsts.append(first)
    return _Split(features, labels, gold, firsts)


def _sentence_splits(job: FinetuneJob, tokenizer: Any) -> tuple[dict[str, _Split], list[str]]:
    """SST-2 train and dev, encoded (the first ``limit`` sentences of each)."""
    splits = {}
    for split in ("train", "dev"):
        examples = read_sst2(dataset_file("sst2_glue", split))
        examples = examples[: job.limit.get(split) or len(examples)]
        splits[split] = _encode_sentences(
            tokenizer,
            [e.sentence for e in examples],
            [int(e.label) for e in examples],
            _max_length(job, tokenizer, split),
        )
    return splits, ["negative", "positive"]


def _pair_splits(job: FinetuneJob, tokenizer: Any) -> tuple[dict[str, _Split], list[str]]:
    """SICK entailment or STS-B pairs of train, dev (and test), the first ``limit`` of each."""
    dataset = "sick" if job.task == "sick_entailment" else "stsbenchmark"
    splits = {}
    for split in ("train", "dev", "test") if job.test else ("train", "dev"):
        pairs = read_sts(dataset, split)
        pairs = pairs[: job.limit.get(split) or len(pairs)]
        if job.task == "stsb":
            labels: list[Any] = [float(p.score) for p in pairs]
        else:
            labels = [SICK_LABELS.index(p.label) for p in pairs]
        length = _max_length(job, tokenizer, split)
        splits[split] = _encode_pairs(tokenizer, pairs, labels, length)
    return splits, ["similarity"] if job.task == "stsb" else list(SICK_LABELS)


def _word_gold(data: Any, split: str, index: dict[str, int]) -> list[np.ndarray]:
    """Per sentence, the label id of every word (BIO tags for a span task, -100 for no label)."""
    part = data.splits[split]
    per_sentence: list[list[tuple[int, int, int]]] = [[] for _ in part.sentences]
    for row, label in zip(part.targets.tolist(), part.labels.tolist(), strict=True):
        per_sentence[row[0]].append((row[1], row[2], label))
    gold = []
    for sent, items in zip(part.sentences, per_sentence, strict=True):
        if data.kind == "span":
            spans = np.asarray([(s, e) for s, e, _ in items]).reshape(-1, 2)
            tags = _bio_tags(len(sent), spans, np.asarray([x for *_, x in items]), data.label_names)
            gold.append(np.asarray([index[t] for t in tags]))
        else:
            g = np.full(len(sent), IGNORE_INDEX)
            for s, _e, label in items:
                g[s] = label
            gold.append(g)
    return gold


def _token_splits(
    job: FinetuneJob, tokenizer: Any, seed: int
) -> tuple[dict[str, _Split], list[str]]:
    """Word or span task splits, encoded with a label on the first piece of every word."""
    data = load_task(job.task, limit=dict(job.limit), seed=seed)
    if data.kind == "span":
        label_names = ["O", *(f"{p}-{t}" for t in data.label_names for p in "BI")]
    else:
        label_names = list(data.label_names)
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for split in ("train", "dev", "test") if job.test else ("train", "dev"):
        gold = _word_gold(data, split, index)
        length = _max_length(job, tokenizer, split)
        splits[split] = _encode_words(tokenizer, data.splits[split].sentences, gold, length)
    return splits, label_names


def _head_prefixes(module: nn.Module, model: Any) -> tuple[str, ...]:
    """Module paths of ``module``'s parameters outside ``model``'s encoder (the task head and
    the scalar mix): they get head_lr."""
    encoder = {id(p) for p in model.base_model.parameters()}
    return tuple(
        sorted(
            {
                name.rpartition(".")[0] + "."
                for name, p in module.named_parameters()
                if id(p) not in encoder
            }
        )
    )


@dataclass
class FinetuneObjective:
    """What the training loop needs for one fine-tuning job (:class:`~probe.training.objective.\
Objective`); made by :func:`build_finetune`, which loads the data and the model.

    Attributes
    ----------
    job : the job's study section.
    tokenizer, model : the model (with its new, seeded task head) and its tokenizer.
    splits : encoded ``train``, ``dev`` (and ``test``) examples.
    label_names : label of each class id.
    frozen : hook names of the frozen layers.
    frozen_layers : how many of the lowest layers 0..L have all their pretrained weights frozen.
    adaptation : modules added to the model (``adaptation.json`` of its checkpoints), or None.
    readout : the module trained instead of ``model`` when the head is not the pooler.
    """

    job: FinetuneJob
    tokenizer: Any
    model: Any
    splits: dict[str, _Split]
    label_names: list[str]
    frozen: list[str]
    frozen_layers: int = 0
    adaptation: dict[str, Any] | None = None
    readout: nn.Module | None = None
    greater_is_better = True
    find_unused_parameters = False

    def __post_init__(self) -> None:
        self.task = self.job.task
        self.sentence_task = self.job.task in SENTENCE_TASKS
        self.regression = self.job.task == "stsb"
        self.main_metric = {"stsb": "spearman"}.get(
            self.job.task, "f1" if self.job.task.startswith("ner") else "accuracy"
        )
        self.n_examples = len(self.splits["train"].features)
        self.lengths = np.asarray([len(f["input_ids"]) for f in self.splits["train"].features])
        self.module: nn.Module = self.readout if self.readout is not None else self.model
        self.head_prefixes = _head_prefixes(self.module, self.model)
        self.final_splits: tuple[str, ...] = ("test",) if self.job.test else ()
        self.layer_of = layer_of_parameters(self.model)
        self.layer_lr_decay = self.job.layer_lr_decay
        self.initial = pretrained_view(self.model)  # for the per-layer weight change
        self.parts = [p for p in layer_parts(self.initial) if p.layer is not None]

    @property
    def trainable_parameters(self) -> int:
        """Parameters that the optimizer updates (task head included)."""
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    def _collate(self, split: _Split, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([split.features[i] for i in indices], return_tensors="pt")
        if self.sentence_task:
            dtype = torch.float32 if self.regression else torch.long
            batch["labels"] = torch.tensor([split.labels[i] for i in indices], dtype=dtype)
        else:
            width = batch["input_ids"].shape[1]
            labels = torch.full((len(indices), width), IGNORE_INDEX, dtype=torch.long)
            for row, i in enumerate(indices):
                labels[row, : len(split.labels[i])] = torch.tensor(split.labels[i])
            batch["labels"] = labels
        return dict(batch)

    # ------------------------------------------------------------------ loop interface

    def batch(self, examples: Sequence[tuple[int, int]], generator: torch.Generator) -> dict:
        """Padded inputs and labels of training examples ``(epoch, index)``."""
        return self._collate(self.splits["train"], [i for _, i in examples])

    def n_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["attention_mask"].sum()

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": module(**batch).loss}

    @torch.no_grad()
    def evaluate(
        self, module: nn.Module, device: torch.device, split: str = "dev"
    ) -> dict[str, float]:
        """Loss (per label) and accuracy or entity F1 on ``split``."""
        data = self.splits[split]
        module.eval()
        order = np.argsort([len(f["input_ids"]) for f in data.features], kind="stable")
        loss_sum = torch.zeros((), device=device)
        n_labels = torch.zeros((), device=device)
        predictions: list[np.ndarray | None] = [None] * len(order)
        for k in range(0, len(order), _EVAL_BATCH):
            idx = order[k : k + _EVAL_BATCH].tolist()
            batch = {key: v.to(device) for key, v in self._collate(data, idx).items()}
            labels = batch.pop("labels")
            logits = module(**batch).logits.float()
            if self.regression:
                loss_sum += F.mse_loss(logits.squeeze(-1), labels, reduction="sum")
                n_labels += labels.numel()
                pred = logits.squeeze(-1).cpu().numpy()
            else:
                loss_sum += F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    labels.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    reduction="sum",
                )
                n_labels += (labels != IGNORE_INDEX).sum()
                pred = logits.argmax(-1).cpu().numpy()
            for row, i in enumerate(idx):
                predictions[i] = pred[row]
        module.train()
        result = {"loss": (loss_sum / n_labels.clamp(min=1)).item()}
        if self.regression:
            pred, gold = np.asarray(predictions, dtype=float), np.asarray(data.labels, dtype=float)
            constant = np.ptp(pred) == 0  # an untrained head: correlation undefined, say 0
            result["pearson"] = 0.0 if constant else 100 * float(pearsonr(pred, gold)[0])
            result["spearman"] = 0.0 if constant else 100 * float(spearmanr(pred, gold)[0])
            return result
        result[self.main_metric] = self._score(data, predictions)
        return result

    def _score(self, data: _Split, predictions: list[Any]) -> float:
        if self.sentence_task:
            pred = np.asarray([int(p) for p in predictions])
            return float((pred == np.asarray(data.labels)).mean())
        correct = total = 0
        tp = n_pred = n_gold = 0
        for gold, first, pred in zip(data.gold, data.first_piece, predictions, strict=True):
            # words cut off by max_length (first == -1) get no prediction: -1 matches no label
            word_pred = np.where(first >= 0, pred[np.maximum(first, 0)], -1)
            if self.main_metric == "accuracy":
                has = gold != IGNORE_INDEX
                correct += int((word_pred[has] == gold[has]).sum())
                total += int(has.sum())
            else:
                names = self.label_names
                g = set(iob2_spans([names[t] for t in gold]))
                p = set(iob2_spans([names[t] if t >= 0 else "O" for t in word_pred]))
                tp += len(g & p)
                n_pred += len(p)
                n_gold += len(g)
        if self.main_metric == "accuracy":
            return correct / max(total, 1)
        return 2 * tp / max(n_pred + n_gold, 1)

    def extra_evaluations(self, module: nn.Module, device: torch.device) -> list[dict[str, Any]]:
        """Per layer: the relative change of the pretrained weights since step 0
        (``relative_weight_change``, LoRA merged in) and the scalar mix's softmax weights
        (``mix_weight``; ``mix_scale`` its gamma). Split ``train``: these describe the weights."""
        now = pretrained_view(self.model)
        rows = [
            {
                "split": "train",
                "metric": "relative_weight_change",
                "layer": part.layer,
                "value": relative_change(self.initial, now, part),
            }
            for part in self.parts
        ]
        mix = getattr(self.model, "scalar_mix", None)
        if mix is not None:
            with torch.no_grad():
                weights = mix.mixture().cpu().tolist()
            rows += [
                {"split": "train", "metric": "mix_weight", "layer": layer, "value": w}
                for layer, w in enumerate(weights)
            ]
            rows.append(
                {"split": "train", "metric": "mix_scale", "value": float(mix.scale.detach())}
            )
        return rows

    def baseline_rows(self) -> list[dict[str, Any]]:
        """Parameter counts (trainable, all, frozen lowest layers) and the majority-label
        baseline on dev (accuracy tasks only)."""
        counts = {
            "trainable_parameters": self.trainable_parameters,
            "total_parameters": sum(p.numel() for p in self.module.parameters()),
            "frozen_layers": self.frozen_layers,
        }
        rows = [{"split": "train", "metric": k, "value": float(v)} for k, v in counts.items()]
        if self.main_metric != "accuracy":
            return rows
        train = np.concatenate([g[g != IGNORE_INDEX] for g in self.splits["train"].gold])
        dev = np.concatenate([g[g != IGNORE_INDEX] for g in self.splits["dev"].gold])
        majority = np.bincount(train).argmax()
        accuracy = float((dev == majority).mean())
        return [*rows, {"split": "dev", "metric": "majority_accuracy", "value": accuracy}]


def build_finetune(job: FinetuneJob, *, seed: int, run_dir: Any = None) -> FinetuneObjective:
    """Load data, tokenizer and model (with a seeded new head) for a fine-tuning job."""
    source = resolve_model(job.model, run_dir=run_dir)
    tokenizer = load_tokenizer(source)
    if job.task == "sst2":
        splits, label_names = _sentence_splits(job, tokenizer)
        model_class = AutoModelForSequenceClassification
    elif job.task in PAIR_TASKS:
        splits, label_names = _pair_splits(job, tokenizer)
        model_class = AutoModelForSequenceClassification
    else:
        splits, label_names = _token_splits(job, tokenizer, seed)
        model_class = AutoModelForTokenClassification
    if not splits["train"].features:
        raise StudyError(f"job {job.name!r}: no training examples (check limit)")
    label_kwargs = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
    }
    if job.task == "stsb":
        label_kwargs["problem_type"] = "regression"  # one output, mean squared error
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized head" is expected here
    try:
        with torch.random.fork_rng(devices=[]), quiet_progress():
            torch.manual_seed(seed)  # the new head's initial weights
            model = load_model(source, model_class, seed=seed, **label_kwargs)
            strategy = apply_strategy(model, job)  # LoRA, adapters, scalar mix: seeded too
    finally:
        transformers.logging.set_verbosity(verbosity)
    readout = Readout(model, job.head) if job.head != "pooler" else None
    return FinetuneObjective(
        job,
        tokenizer,
        model,
        splits,
        label_names,
        strategy.frozen,
        frozen_layers=strategy.frozen_layers,
        adaptation=strategy.adaptation,
        readout=readout,
    )
