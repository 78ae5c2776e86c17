"""The runtime rules, in one place: which device, which autocast precision, how to seed.

Every stage asks these functions rather than deciding for itself, so ``device: auto`` and
``precision: auto`` mean the same thing for capture, embeddings, training and landscapes:

- device ``auto``: CUDA, else MPS, else CPU; asking for CUDA without a GPU is a study error.
- precision: autocast only on CUDA (bf16 autocast on CPU measured 0.65x the speed of fp32 on
  the 2-core machine, so CPU and MPS always run fp32); ``auto`` and ``bf16`` use bf16 where the
  GPU supports it, else fp16; ``fp16`` is fp16; ``fp32`` never autocasts.
- seeding: Python, NumPy and torch (every CUDA device) from one integer.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from probe.errors import StudyError

__all__ = ["autocast", "autocast_dtype", "mixed_precision", "resolve_device", "seed_everything"]


def resolve_device(requested: str | torch.device | None = "auto", *, mps: bool = True):
    """The torch device for a study's ``device`` setting (``None`` means ``auto``).

    ``mps=False`` skips Apple GPUs (for code that needs float64, which MPS lacks).
    """
    if isinstance(requested, torch.device):
        return requested
    if requested is None or requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise StudyError("device: 'cuda' requested but no CUDA GPU is visible; use device: auto")
    return torch.device(requested)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype on ``device`` for ``precision`` (None: run in fp32)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16" or not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """``torch.autocast`` for a forward pass on ``device`` (disabled where it does not apply)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def mixed_precision(precision: str, device: torch.device) -> str:
    """``accelerate``'s mixed-precision mode (``no``, ``bf16``, ``fp16``) for training."""
    dtype = autocast_dtype(device, precision)
    return {None: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (torch seeds every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
