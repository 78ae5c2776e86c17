"""Study section of the training stage: a list of pretraining and fine-tuning jobs.

A study's ``train`` section is a list of jobs, run in order. Each job has a ``name`` (its
checkpoints go to ``checkpoints/<name>/`` and later stages refer to them as
``trained:<name>@<step>``) and a ``kind``::

    train:
      jobs:
        - name: tiny
          kind: pretrain          # BertForPreTraining, masked LM + next-sentence prediction
          size: tiny              # tiny | mini | small | medium | base, then overrides
          corpus: wikitext2       # registered dataset, or a .txt file / folder
          tokenizer: train        # train a WordPiece vocabulary, or reuse a model spec's
          steps: 600
          save_steps: [50, 100, 200, 400]
        - name: sst2-minilm
          kind: finetune          # sequence or token classification from any model spec
          model: embedded:minilm
          task: sst2
          epochs: 3
          limit: {train: 4000}

``train:`` may also be written directly as the list of jobs.

A leaf module (pure pydantic); the checks that need models or files are in
:mod:`probe.training.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from probe._schema import PathName, Seed, StrictModel

__all__ = [
    "FINETUNE_TASKS",
    "PAIR_TASKS",
    "SENTENCE_TASKS",
    "SIZES",
    "AdapterSettings",
    "FinetuneJob",
    "LoraSettings",
    "PretrainJob",
    "StopCriterion",
    "TrainJob",
    "TrainSection",
    "model_sizes",
]

#: Named sizes (n_layers, d_model) of the compact BERTs of Turc et al. (2019), plus BERT-base.
#: Heads are d_model / 64 and the feed-forward width is 4 * d_model, as in those models.
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}

#: Fine-tuning tasks: sentence classification (``sst2``), sentence pairs (``sick_entailment``:
#: 3-class entailment, ``stsb``: similarity regression) and token classification (the rest).
FINETUNE_TASKS = ("sst2", "sick_entailment", "stsb", "upos", "xpos", "ner_conll2003", "ner_uner")
#: Tasks with one label per sentence or sentence pair (the head reads a pooled vector).
SENTENCE_TASKS = ("sst2", "sick_entailment", "stsb")
#: Sentence-pair tasks: ``[CLS] A [SEP] B [SEP]`` with segment ids 0 for A, 1 for B.
PAIR_TASKS = ("sick_entailment", "stsb")

# Job fields that do not change the weights a job ends with: a resumed job may differ in these.
RESUMABLE_FIELDS = frozenset(
    {"save_every", "save_steps", "keep_optimizer", "log_every", "eval_every", "eval_examples"}
    | {"eval_on_save"}
    | {"arm"}  # a label that groups seeds in figures
)

#: BERT's create_pretraining_data.py default: the data is masked in 10 different ways.
DEFAULT_DUPE_FACTOR = 10

PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class _JobBase(StrictModel):
    """What every job has: a name, a budget, the optimiser and the schedules."""

    name: PathName  # the folder checkpoints/<name>/
    seed: Seed | None = None
    steps: PositiveInt | None = None
    epochs: Annotated[float, Field(gt=0)] | None = None
    batch_size: PositiveInt = 32
    grad_accum: PositiveInt = 1
    lr: Annotated[float, Field(gt=0)] = 5e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_ratio: Probability = 0.1
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    max_grad_norm: Annotated[float, Field(gt=0)] | None = 1.0
    # Adam divides by 1 - beta**t: a beta of 1 is a division by zero on the first step.
    adam_betas: tuple[Beta, Beta] = (0.9, 0.999)
    adam_eps: Annotated[float, Field(gt=0)] = 1e-8
    max_length: Annotated[int, Field(gt=8)] = 128
    log_every: PositiveInt = 10
    eval_every: PositiveInt | None = None
    save_every: PositiveInt | None = None
    # Dev metrics at every checkpoint too (the default); false scores dev only at eval_every and
    # the last step, for dense trajectories (save_every: 5) whose checkpoints are only weights.
    eval_on_save: bool = True
    save_steps: list[Annotated[int, Field(ge=0)]] = []
    keep_optimizer: PositiveInt = 1
    group_by_length: bool = False

    @model_validator(mode="after")
    def _one_budget(self) -> _JobBase:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"job {self.name!r}: give exactly one of steps or epochs")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"job {self.name!r}: batch_size ({self.batch_size}) must be a multiple of "
                f"grad_accum ({self.grad_accum}); batch_size is sequences per optimizer step"
            )
        if self.steps is not None:
            late = [s for s in self.save_steps if s > self.steps]
            if late:
                raise ValueError(
                    f"job {self.name!r}: save_steps {late} are beyond steps={self.steps}"
                )
        return self


class PretrainJob(_JobBase):
    """Masked-LM (+ next-sentence prediction) pretraining of ``BertForPreTraining`` from scratch.

    Architecture: ``size`` names one of :data:`SIZES`; ``d_model``, ``n_layers``, ``n_heads`` and
    ``d_ff`` (the intermediate, feed-forward width) override it.

    Objective settings (the pretraining ablations; see the README): ``mlm_probability`` is the
    share of tokens chosen as targets, ``replacement`` the shares of targets that become
    ``[MASK]``, a random token, or stay unchanged (BERT: 0.8, 0.1, 0.1); ``masking: dynamic``
    draws masks afresh every time a sequence is fed (RoBERTa), ``masking: static`` masks
    ``dupe_factor`` copies of the data once each and reuses those masks (BERT); ``nsp: false``
    trains the masked LM alone, and ``packing: full_sentences`` then packs sentences across
    document boundaries (RoBERTa's FULL-SENTENCES). ``train_documents`` keeps only the first N
    training documents (a small corpus that training repeats many times). ``arm`` names the
    setting a job is one seed of: jobs with the same arm are averaged in the ablation figures.
    """

    kind: Literal["pretrain"]
    lr: Annotated[float, Field(gt=0)] = 1e-4
    size: Literal["tiny", "mini", "small", "medium", "base"] = "tiny"
    d_model: PositiveInt | None = None
    n_layers: PositiveInt | None = None
    n_heads: PositiveInt | None = None
    d_ff: PositiveInt | None = None
    max_position_embeddings: Annotated[int, Field(ge=16)] = 512
    corpus: str = "wikitext2"
    train_split: str = "dev"
    eval_split: str = "test"
    held_out: Annotated[float, Field(gt=0, lt=1)] = 0.1
    tokenizer: str = "train"
    vocab_size: Annotated[int, Field(ge=64)] = 8192
    lowercase: bool = True
    train_documents: PositiveInt | None = None
    mlm_probability: Annotated[float, Field(gt=0, lt=1)] = 0.15
    replacement: tuple[Probability, Probability, Probability] = (0.8, 0.1, 0.1)
    whole_word_mask: bool = False
    masking: Literal["dynamic", "static"] = "dynamic"
    dupe_factor: PositiveInt | None = None
    nsp: bool = True
    packing: Literal["document", "full_sentences"] = "document"
    short_seq_prob: Probability = 0.1
    eval_examples: PositiveInt = 512
    arm: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")] | None = None

    @property
    def copies(self) -> int:
        """Masked copies of the data: ``dupe_factor`` (default 10) for static masking, else 0."""
        if self.masking != "static":
            return 0
        return self.dupe_factor if self.dupe_factor is not None else DEFAULT_DUPE_FACTOR

    @model_validator(mode="after")
    def _masking_settings_agree(self) -> PretrainJob:
        if abs(sum(self.replacement) - 1) > 1e-6:
            raise ValueError(
                f"job {self.name!r}: replacement {list(self.replacement)} must sum to 1 "
                "(shares of targets that become [MASK], a random token, or stay unchanged)"
            )
        if self.dupe_factor is not None and self.masking != "static":
            raise ValueError(
                f"job {self.name!r}: dupe_factor only applies to masking: static "
                f"(got masking: {self.masking}); remove it or set masking: static"
            )
        if self.packing == "full_sentences" and self.nsp:
            raise ValueError(
                f"job {self.name!r}: packing: full_sentences crosses document boundaries, which "
                "next-sentence pairs cannot; set nsp: false or packing: document"
            )
        return self

    @model_validator(mode="after")
    def _heads_divide_width(self) -> PretrainJob:
        sizes = model_sizes(self)
        if sizes["hidden_size"] % sizes["num_attention_heads"]:
            raise ValueError(
                f"job {self.name!r}: d_model ({sizes['hidden_size']}) must be divisible by "
                f"n_heads ({sizes['num_attention_heads']})"
            )
        return self


class StopCriterion(StrictModel):
    """Train until the model fits its training subset, within the job's step budget.

    Every ``every`` steps the whole training subset is scored (eval mode, no dropout); training
    stops at the first check where ``train_accuracy`` is reached (>=) or ``train_loss`` is
    reached (<=), whichever is given first. ``steps``/``epochs`` stay the budget (and set the
    learning-rate schedule); the training table says whether the criterion held
    (``criterion_met``) and at which step.
    """

    train_accuracy: Probability | None = None
    train_loss: Annotated[float, Field(gt=0)] | None = None
    every: PositiveInt = 10

    @model_validator(mode="after")
    def _some_threshold(self) -> StopCriterion:
        if self.train_accuracy is None and self.train_loss is None:
            raise ValueError("give train_accuracy, train_loss or both, e.g. {train_loss: 0.05}")
        return self

    def holds(self, metrics: dict[str, float]) -> bool:
        """Whether the training-subset ``metrics`` (``loss``, ``accuracy``) meet a threshold."""
        accuracy, loss = metrics.get("accuracy"), metrics.get("loss")
        return (
            self.train_accuracy is not None
            and accuracy is not None
            and accuracy >= self.train_accuracy
        ) or (self.train_loss is not None and loss is not None and loss <= self.train_loss)


class LoraSettings(StrictModel):
    """LoRA (Hu et al. 2021) through ``peft``: ``W + (alpha / rank) B A`` on the named linear
    layers of every encoder layer (``query``, ``key``, ``value``, ``dense`` ...: the last part
    of a module's name; the pooler is never adapted), ``A`` random and ``B`` zero at the start."""

    rank: PositiveInt = 8
    alpha: Annotated[float, Field(gt=0)] | None = None  # default: 2 * rank (peft's examples)
    dropout: Probability = 0.1
    targets: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]], Field(min_length=1)
    ] = [
        "query",
        "value",
    ]


class AdapterSettings(StrictModel):
    """Bottleneck adapters (Houlsby et al. 2019): ``h + up(gelu(down(h)))`` after the attention
    output projection and after the feed-forward output of every layer, ``up`` near zero at the
    start; ``layer_norm`` also trains every LayerNorm of the encoder, as Houlsby et al. do."""

    size: PositiveInt = 64
    layer_norm: bool = True


class FinetuneJob(_JobBase):
    """Fine-tuning of any model spec on sentence, sentence-pair or token classification.

    ``freeze_layers: k`` freezes the lowest ``k`` layers, where layer 0 is the embeddings (so
    ``1`` freezes the embeddings only, ``L + 1`` the whole encoder; the pooler above the last
    layer stays trainable, as part of the sentence head). ``head_lr`` is the learning
    rate of the new classification head (default: ``lr``). ``limit`` keeps the first N sentences
    of a split for CPU-sized runs. ``stop`` trains until the training subset is fitted
    (:class:`StopCriterion`); ``arm`` names the setting a job is one seed of.

    Strategies (the README's "Fine-tuning strategies"; any sensible combination):

    - ``train_top_layers: k`` trains only the top ``k`` encoder layers (and the head);
    - ``features: true`` freezes the whole encoder, pooler included (feature-based);
    - ``head`` is what a sentence head reads: ``pooler`` (BERT's tanh pooler over [CLS]),
      ``cls`` ([CLS] of the last layer) or ``mean`` (the mean over tokens); ``scalar_mix``
      replaces the last layer by a learned softmax-weighted, scaled sum of layers 0..L (ELMo),
      trained with the head;
    - ``lora`` / ``adapter``: parameter-efficient fine-tuning, every pretrained weight frozen;
    - ``layer_lr_decay: xi``: layer ``l`` learns at ``lr * xi ** (L - l)`` (embeddings: l = 0).
    """

    kind: Literal["finetune"]
    model: str
    task: Literal["sst2", "sick_entailment", "stsb", "upos", "xpos", "ner_conll2003", "ner_uner"]
    freeze_layers: Annotated[int, Field(ge=0)] = 0
    train_top_layers: Annotated[int, Field(ge=0)] | None = None
    features: bool = False
    head: Literal["pooler", "cls", "mean"] = "pooler"
    scalar_mix: bool = False
    lora: LoraSettings | None = None
    adapter: AdapterSettings | None = None
    layer_lr_decay: Annotated[float, Field(gt=0, le=1)] | None = None
    head_lr: Annotated[float, Field(gt=0)] | None = None
    limit: dict[Literal["train", "dev", "test"], PositiveInt | None] = {}
    test: bool = False
    stop: StopCriterion | None = None
    arm: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")] | None = None

    @property
    def strategy(self) -> str:
        """A short name of the job's strategy: ``full``, ``freeze``, ``top``, ``features``,
        ``lora``, ``adapter``, with ``+mix`` and ``+llrd`` when those are on."""
        if self.features:
            name = "features"
        elif self.lora is not None:
            name = "lora"
        elif self.adapter is not None:
            name = "adapter"
        elif self.train_top_layers is not None:
            name = "top"
        elif self.freeze_layers:
            name = "freeze"
        else:
            name = "full"
        return (
            name
            + ("+mix" if self.scalar_mix else "")
            + ("+llrd" if self.layer_lr_decay is not None else "")
        )

    @model_validator(mode="after")
    def _strategies_agree(self) -> FinetuneJob:
        problems = _strategy_problems(self)
        if problems:
            raise ValueError(f"job {self.name!r}: " + "; ".join(problems))
        return self


def _strategy_problems(job: FinetuneJob) -> list[str]:
    """Every combination of strategy settings that makes no sense, each with its fix."""
    problems = []
    peft = [k for k in ("lora", "adapter") if getattr(job, k) is not None]
    freezing = [k for k in ("freeze_layers", "train_top_layers") if getattr(job, k)]
    if job.train_top_layers is not None and job.freeze_layers:
        problems.append(
            "freeze_layers and train_top_layers both choose the frozen layers; give one"
        )
    if len(peft) == 2:
        problems.append("lora and adapter are alternatives; give one")
    if peft and freezing:
        problems.append(
            f"{peft[0]} already freezes every pretrained weight; remove {', '.join(freezing)}"
        )
    if job.features:
        clash = [*peft, *freezing] + (["layer_lr_decay"] if job.layer_lr_decay else [])
        if clash:
            problems.append(f"features: true freezes the whole encoder; remove {', '.join(clash)}")
        if job.head == "pooler":
            problems.append(
                "features: true freezes the pooler too; give head: cls or mean (or use "
                "freeze_layers: L+1 to train the pooler over a frozen encoder)"
            )
    if job.task not in SENTENCE_TASKS and (job.head != "pooler" or job.scalar_mix):
        problems.append(
            f"head and scalar_mix apply to sentence tasks ({', '.join(SENTENCE_TASKS)}), "
            f"not {job.task}"
        )
    elif job.scalar_mix and job.head == "pooler":
        problems.append("scalar_mix replaces the last layer the head reads; give head: cls or mean")
    if job.task == "stsb" and job.stop is not None and job.stop.train_accuracy is not None:
        problems.append("stop.train_accuracy: stsb is a regression; use stop.train_loss")
    return problems


TrainJob = Annotated[PretrainJob | FinetuneJob, Field(discriminator="kind")]


def model_sizes(job: PretrainJob) -> dict[str, int]:
    """``BertConfig`` size arguments of a pretraining job (named size, then overrides).

    >>> job = PretrainJob(name="x", kind="pretrain", steps=1, n_layers=3)
    >>> model_sizes(job)["num_hidden_layers"], model_sizes(job)["hidden_size"]
    (3, 128)
    """
    n_layers, d_model = SIZES[job.size]
    d_model = job.d_model or d_model
    return {
        "hidden_size": d_model,
        "num_hidden_layers": job.n_layers or n_layers,
        "num_attention_heads": job.n_heads or max(1, d_model // 64),
        "intermediate_size": job.d_ff or 4 * d_model,
        "max_position_embeddings": job.max_position_embeddings,
    }


def saved_steps(job: PretrainJob | FinetuneJob, total_steps: int) -> list[int]:
    """Steps at which ``job`` saves ``step-<N>/``: 0, the schedule, and the last step."""
    steps = {0, total_steps, *(s for s in job.save_steps if s <= total_steps)}
    if job.save_every:
        steps.update(range(job.save_every, total_steps + 1, job.save_every))
    return sorted(steps)


class TrainSection(StrictModel):
    """The ``train`` section: jobs run in order; ``figures`` draws their loss curves."""

    jobs: Annotated[list[TrainJob], Field(min_length=1)]
    figures: bool = True

    @model_validator(mode="before")
    @classmethod
    def _jobs_from_list(cls, value: Any) -> Any:
        return {"jobs": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _unique_names(self) -> TrainSection:
        names = [job.name for job in self.jobs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"job names must be unique, got {duplicates} twice")
        return self

    def job(self, name: str) -> PretrainJob | FinetuneJob:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)
