"""AdamW with BERT's weight-decay exemptions, an optional head learning rate, layer-wise
learning-rate decay, and the schedule.

Weight decay is not applied to biases and LayerNorm weights (BERT's recipe: decaying a norm's
scale or a bias towards zero is not regularisation of the function). LayerNorms are found by
module type, not by parameter name, so models that name them differently are handled too. The
schedule is ``transformers.get_linear_schedule_with_warmup``: linear warmup from 0, then linear
decay to 0 at the last step.

Layer-wise decay (Howard & Ruder 2018; Sun et al. 2019, "How to fine-tune BERT"): with
``layer_lr_decay = xi`` a parameter of layer ``l`` (0 = embeddings, ``L`` the last encoder layer)
learns at ``lr * xi ** (L - l)``; the pooler and the head, above layer ``L``, keep ``lr`` (or
``head_lr``). Every rate follows the same warmup/decay schedule (the scheduler scales each
group's initial rate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

__all__ = ["build_optimizer", "no_decay_names", "param_groups", "warmup_steps"]


def no_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters exempt from weight decay: every bias and every LayerNorm parameter."""
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name == "bias" or isinstance(module, nn.LayerNorm):
                names.add(full)
    return names


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    head_lr: float | None = None,
    head_prefixes: Sequence[str] = (),
    layer_of: Mapping[int, int] | None = None,
    layer_lr_decay: float | None = None,
) -> list[dict]:
    """AdamW parameter groups: (body, head) x (decay, no decay); frozen parameters left out.

    With ``layer_lr_decay`` the body is split further by layer (``layer_of``: ``id(parameter)``
    to its layer 0..L, see :func:`probe.training.strategies.layer_of_parameters`); a body
    parameter in no layer (the pooler) learns at ``lr``. Each group carries a ``name``
    (``body/decay``, ``body/layer3/no_decay``, ``head/decay`` ...) for logging; empty groups are
    dropped. The first group is always a body group at ``lr`` when there is one (the top of the
    body first), so the learning rate logged from group 0 is the base rate.
    """
    exempt = no_decay_names(model)
    layers = dict(layer_of or {}) if layer_lr_decay is not None else {}
    top = max(layers.values(), default=0)
    groups: dict[tuple[str, int | None, str], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = "head" if head_prefixes and name.startswith(tuple(head_prefixes)) else "body"
        layer = layers.get(id(parameter)) if part == "body" else None
        decay = "no_decay" if name in exempt else "decay"
        groups.setdefault((part, layer, decay), []).append(parameter)

    def order(key: tuple[str, int | None, str]) -> tuple[int, int, int]:
        part, layer, decay = key
        return (part == "head", -(top + 1 if layer is None else layer), decay == "no_decay")

    out = []
    for part, layer, decay in sorted(groups, key=order):
        rate = head_lr if part == "head" and head_lr is not None else lr
        if layer is not None:
            rate = lr * layer_lr_decay ** (top - layer)  # type: ignore[operator]
        where = part if layer is None else f"{part}/layer{layer}"
        out.append(
            {
                "name": f"{where}/{decay}",
                "params": groups[(part, layer, decay)],
                "lr": rate,
                "weight_decay": weight_decay if decay == "decay" else 0.0,
            }
        )
    return out


def warmup_steps(total_steps: int, ratio: float, steps: int | None = None) -> int:
    """Warmup length: ``steps`` if given, else ``round(ratio * total_steps)``.

    >>> warmup_steps(1000, 0.1), warmup_steps(1000, 0.1, 50)
    (100, 50)
    """
    return int(steps) if steps is not None else round(ratio * total_steps)


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    total_steps: int,
    n_warmup: int,
    head_lr: float | None = None,
    head_prefixes: Sequence[str] = (),
    layer_of: Mapping[int, int] | None = None,
    layer_lr_decay: float | None = None,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` and its linear warmup/decay schedule."""
    groups = param_groups(
        model,
        lr=lr,
        weight_decay=weight_decay,
        head_lr=head_lr,
        head_prefixes=head_prefixes,
        layer_of=layer_of,
        layer_lr_decay=layer_lr_decay,
    )
    if not groups:
        raise ValueError("no trainable parameters (is every layer frozen?)")
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    scheduler = get_linear_schedule_with_warmup(optimizer, n_warmup, total_steps)
    return optimizer, scheduler
