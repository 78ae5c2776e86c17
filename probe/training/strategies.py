"""Fine-tuning strategies: which weights train, what a sentence head reads, at which rate.

:func:`apply_strategy` turns a job's settings (:class:`~probe.training.config.FinetuneJob`) into
``requires_grad`` flags and added modules; frozen parameters then get no optimizer state
(:func:`probe.training.optim.param_groups` leaves them out). :class:`Readout` is the sentence
head that reads ``[CLS]`` of the last layer, the token mean, or the same over a learned scalar mix
of all layers, instead of BERT's pooler. :func:`layer_of_parameters` numbers every parameter by
its layer (0 = embeddings), which layer-wise learning-rate decay and the per-layer weight change
read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch convention)
from transformers.modeling_outputs import SequenceClassifierOutput

from probe.adaptation import ScalarMix, add_adapters, add_lora, encoder_layers
from probe.capture import hook_points
from probe.errors import StudyError
from probe.training.config import FinetuneJob

__all__ = ["Readout", "Strategy", "adaptation_of", "apply_strategy", "layer_of_parameters"]


@dataclass(frozen=True)
class Strategy:
    """What :func:`apply_strategy` did to a model.

    Attributes
    ----------
    frozen : hook names of the layers whose pretrained weights are all frozen.
    frozen_layers : how many of the lowest layers 0..L are frozen (0..L+1).
    adaptation : what ``adaptation.json`` records (None when nothing was added).
    """

    frozen: list[str]
    frozen_layers: int
    adaptation: dict[str, Any] | None


def layer_of_parameters(model: nn.Module) -> dict[int, int]:
    """``id(parameter) -> layer`` (0 = embeddings, l = encoder layer l) for the encoder's
    parameters; the pooler and the head are in no layer."""
    out: dict[int, int] = {}
    for layer, module in enumerate(hook_points(model).values()):
        for parameter in module.parameters():
            out.setdefault(id(parameter), layer)
    return out


def _freeze(module: nn.Module) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(False)


def adaptation_of(job: FinetuneJob, n_layers: int) -> dict[str, Any] | None:
    """The modules a job adds, as ``adaptation.json`` records them (None: it adds none)."""
    adaptation: dict[str, Any] = {}
    if job.lora is not None:
        lora = job.lora
        adaptation["lora"] = {
            "rank": lora.rank,
            "alpha": lora.alpha if lora.alpha is not None else 2.0 * lora.rank,
            "dropout": lora.dropout,
            "targets": list(lora.targets),
        }
    if job.adapter is not None:
        adaptation["adapter"] = {"size": job.adapter.size}
    if job.scalar_mix:
        adaptation["scalar_mix"] = n_layers + 1
    return adaptation or None


def apply_strategy(model: nn.Module, job: FinetuneJob) -> Strategy:
    """Freeze, add LoRA/adapters/scalar mix to ``model`` (in place) as ``job`` says.

    Raises
    ------
    StudyError
        ``freeze_layers``/``train_top_layers`` beyond the model's layers, or layers that share
        weights (ALBERT) split by them.
    """
    from probe.training.finetune import freeze_lowest_layers

    n_layers = len(hook_points(model)) - 1
    base = model.base_model
    adaptation = adaptation_of(job, n_layers)
    if job.lora is not None or job.adapter is not None or job.features:
        _freeze(base)  # every pretrained weight; the added modules below are trainable
        frozen_layers = n_layers + 1
        if job.lora is not None:
            add_lora(model, **adaptation["lora"])
        if job.adapter is not None:
            add_adapters(model, size=job.adapter.size)
            if job.adapter.layer_norm:  # Houlsby et al. also train the layer norms
                for layer in encoder_layers(model):
                    for module in layer.modules():
                        if isinstance(module, nn.LayerNorm):
                            module.requires_grad_(True)
        frozen = list(hook_points(model))
    else:
        if job.train_top_layers is not None:
            if job.train_top_layers > n_layers:
                raise StudyError(
                    f"train_top_layers: {job.train_top_layers} exceeds the model's "
                    f"{n_layers} encoder layers"
                )
            frozen_layers = n_layers + 1 - job.train_top_layers
        else:
            frozen_layers = job.freeze_layers
        frozen = freeze_lowest_layers(model, frozen_layers)
    pooler = getattr(base, "pooler", None)
    if pooler is not None and job.head != "pooler":
        _freeze(pooler)  # not read by the head: it would count as trainable for nothing
    elif pooler is not None and not job.features:
        pooler.requires_grad_(True)  # part of the sentence head, as with freeze_layers
    if job.scalar_mix:
        model.scalar_mix = ScalarMix(n_layers + 1)  # a submodule: saved with the checkpoint
    return Strategy(frozen, frozen_layers, adaptation)


class Readout(nn.Module):
    """A sentence task model whose head reads ``[CLS]`` or the token mean of the last layer
    (or of the scalar mix of layers 0..L) instead of BERT's pooler.

    Wraps a ``*ForSequenceClassification`` model ``model`` and reuses its dropout and linear
    ``classifier``; the mix is ``model.scalar_mix`` (so checkpoints of ``model`` hold it).
    Returns what the HF model returns (``logits``, and ``loss`` when ``labels`` are given:
    cross-entropy, or mean squared error for a one-output regression).
    """

    def __init__(self, model: nn.Module, pooling: str) -> None:
        super().__init__()
        classifier = getattr(model, "classifier", None)
        if not isinstance(classifier, nn.Linear):
            raise StudyError(
                f"head: {pooling} needs a model whose classifier is one linear layer (BERT); "
                f"{type(model).__name__} has {type(classifier).__name__}"
            )
        self.model = model
        self.pooling = pooling

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        mix = getattr(self.model, "scalar_mix", None)
        out = self.model.base_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=mix is not None,
        )
        states = mix(out.hidden_states) if mix is not None else out.last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.model.classifier(self.model.dropout(pooled))
        loss = None
        if labels is not None:
            if logits.shape[-1] == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)
