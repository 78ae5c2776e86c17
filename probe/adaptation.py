"""Modules that fine-tuning adds to a pretrained encoder, and loading models that carry them.

- LoRA (Hu et al. 2021) comes from ``peft`` (:func:`add_lora`, ``peft.inject_adapter_in_model``
  on the encoder layers only, so the pooler is never adapted).
- Bottleneck adapters (Houlsby et al. 2019) are a small module of our own
  (:class:`BottleneckAdapter`): ``peft`` 0.21 has no Houlsby adapter (its tuners reparametrise
  or prompt; the bottleneck-adapter family lives in the separate AdapterHub ``adapters``
  package, which pins its own transformers versions), and the module is ten lines.
- :class:`ScalarMix` is ELMo's learned layer mixture ``gamma * sum_l softmax(w)_l h_l``.

A checkpoint of a model with any of these holds the *whole* state (``model.safetensors``: the
pretrained weights, under their adapted names, and the new weights) plus ``adaptation.json``,
which says what to add to a freshly built model before loading that state
(:func:`load_adapted`). :func:`probe.models.load_model` does this for every model spec, so
``trained:<job>`` and ``run:`` specs of LoRA or adapter jobs load like any other model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from probe.errors import ModelError, StudyError

__all__ = [
    "ADAPTATION_FILE",
    "AdaptedLinear",
    "BottleneckAdapter",
    "ScalarMix",
    "add_adapters",
    "add_lora",
    "attach",
    "encoder_layers",
    "is_new_parameter",
    "load_adapted",
    "pretrained_view",
    "read_adaptation",
]

ADAPTATION_FILE = "adaptation.json"

#: Names of parameters that fine-tuning adds (not in the pretrained model).
_NEW = re.compile(r"(?:^|\.)(?:lora_[A-Za-z_]+|adapter|scalar_mix)\.")


def is_new_parameter(name: str) -> bool:
    """Whether parameter ``name`` was added by fine-tuning (LoRA, adapter, scalar mix)."""
    return _NEW.search(name) is not None


class ScalarMix(nn.Module):
    """``gamma * sum_l softmax(w)_l h_l`` over layers 0..L (Peters et al. 2018).

    ``w`` starts at zero (every layer weighted equally) and ``gamma`` at one.
    """

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))
        self.scale = nn.Parameter(torch.ones(()))

    def mixture(self) -> torch.Tensor:
        """The softmax weights of shape (n_layers,); they sum to 1."""
        return torch.softmax(self.weights, dim=0)

    def forward(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mix ``states`` (one of shape (batch, seq, d_model) per layer) into one."""
        stacked = torch.stack(list(states), dim=0)  # (n_layers, batch, seq, d_model)
        return self.scale * torch.einsum("l,lbsd->bsd", self.mixture(), stacked)


class BottleneckAdapter(nn.Module):
    """Houlsby et al.'s adapter ``h + up(gelu(down(h)))``; ``up`` starts at zero (identity)."""

    def __init__(self, d_model: int, size: int) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, size)
        self.up = nn.Linear(size, d_model)
        nn.init.normal_(self.down.weight, std=0.02)  # BERT's initialiser range
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(nn.functional.gelu(self.down(hidden)))


class AdaptedLinear(nn.Module):
    """A linear layer followed by an adapter (named ``base_layer`` like peft's wrappers)."""

    def __init__(self, base_layer: nn.Linear, size: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = BottleneckAdapter(base_layer.out_features, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base_layer(x))


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder layers 1..L of a BERT-style model (hook points ``layers.{l}.output``)."""
    from probe.capture import hook_points

    layers = [m for name, m in hook_points(model).items() if name != "embed"]
    return list({id(m): m for m in layers}.values())  # ALBERT: one module, several layers


def add_lora(
    model: nn.Module, *, rank: int, alpha: float, dropout: float, targets: Sequence[str]
) -> None:
    """Inject LoRA into the ``targets`` linear layers of every encoder layer (in place)."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets)
    )
    try:
        inject_adapter_in_model(config, nn.ModuleList(encoder_layers(model)))
    except ValueError as exc:
        raise StudyError(
            f"lora.targets {list(targets)} match no linear layer of the encoder layers "
            f"(BERT's are query, key, value, dense): {str(exc).splitlines()[0][:80]}"
        ) from None


def add_adapters(model: nn.Module, *, size: int) -> None:
    """Put an adapter after the attention output and the feed-forward output of every layer."""
    found = 0
    for layer in encoder_layers(model):
        for name, module in list(layer.named_modules()):
            if name.endswith("output.dense") and isinstance(module, nn.Linear):
                parent = layer.get_submodule(name.rpartition(".")[0])
                parent.dense = AdaptedLinear(module, size)
                found += 1
    if not found:
        raise StudyError(
            f"adapter: {type(model).__name__} has no BERT-style attention.output.dense / "
            "output.dense layers to put adapters after"
        )


def attach(model: nn.Module, adaptation: dict[str, Any]) -> None:
    """Add the modules ``adaptation`` (as in ``adaptation.json``) describes to ``model``."""
    if adaptation.get("lora"):
        add_lora(model, **adaptation["lora"])
    if adaptation.get("adapter"):
        add_adapters(model, size=adaptation["adapter"]["size"])
    if adaptation.get("scalar_mix"):
        model.scalar_mix = ScalarMix(int(adaptation["scalar_mix"]))


def read_adaptation(folder: str | Path) -> dict[str, Any] | None:
    """The ``adaptation.json`` of a checkpoint folder, or None when it has none."""
    path = Path(folder) / ADAPTATION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _saved_state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        raise ModelError(f"{folder}: an adapted checkpoint needs model.safetensors (one shard)")
    return load_file(path)


def load_adapted(
    model_class: Any, folder: str | Path, adaptation: dict[str, Any], **kwargs: Any
) -> nn.Module:
    """Build ``model_class`` from the checkpoint's config, add its modules, load its state.

    The checkpoint is a task model (``bert.``-prefixed names); loading it as a bare encoder
    (``AutoModel``) reads the same weights without the prefix and leaves the head out. A task
    head of another size (a new task) keeps its fresh initialisation, as ``from_pretrained`` does.

    Raises
    ------
    ModelError
        A weight of the model is not in the checkpoint.
    """
    from transformers import AutoConfig

    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    for key in ("num_labels", "id2label", "label2id", "problem_type"):
        if key in kwargs:
            setattr(config, key, kwargs.pop(key))
    model = model_class.from_config(config, **kwargs)
    attach(model, adaptation)
    saved = _saved_state(folder)
    prefix = getattr(model, "base_model_prefix", "")
    state, missing = {}, []
    for key, tensor in model.state_dict().items():
        value = saved.get(key, saved.get(f"{prefix}.{key}"))
        if value is not None and value.shape == tensor.shape:
            state[key] = value
        elif key.startswith("classifier."):  # a new task's head
            state[key] = tensor
        else:
            missing.append(key)
    if missing:
        raise ModelError(
            f"{folder}: {len(missing)} weight(s) of the adapted model not in the checkpoint "
            f"({', '.join(missing[:3])})"
        )
    model.load_state_dict(state)
    return model


@torch.no_grad()
def pretrained_view(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's pretrained weights under their original names, LoRA merged into them.

    What fine-tuning did to the pretrained function's weights: a LoRA layer counts as
    ``W + (alpha / rank) B A`` (what ``merge`` would write); adapter and scalar-mix weights are
    new (no initial value to compare with) and left out. Tensors are detached copies on the CPU.
    """
    view = {
        name.replace(".base_layer.", "."): p.detach().cpu().clone()
        for name, p in model.named_parameters()
        if not is_new_parameter(name)
    }
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            for adapter in getattr(module, "active_adapters", ["default"]):
                view[f"{name}.weight"] += module.get_delta_weight(adapter).detach().cpu()
    return view
