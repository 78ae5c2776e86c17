"""Checkpoints of a training job: layout, atomic saving, resume points, architecture checks.

Layout (a contract: :func:`probe.models.checkpoint_dir` and the landscape stage read it)::

    checkpoints/<job>/step-<N>/   config.json, model.safetensors, tokenizer files  (save_pretrained)
                                  adaptation.json     modules added to the pretrained model
                                                      (LoRA, adapters, scalar mix), if any
                                  training_state.pt   step, job config, architecture, best metric,
                                                      loss history, RNG states of every process
                                  optimizer.pt        optimizer, scheduler and grad-scaler states
                                                      (only in the newest ``keep_optimizer``)
    checkpoints/<job>/final/      the weights after the last step (files hard-linked from the
                                  last ``step-<N>`` when possible), plus training_state.pt

``step-0`` (the initial weights) is always saved. A checkpoint is written into a hidden
``.tmp-<name>`` folder and renamed into place, so a crash never leaves a half-written
``step-<N>`` that resuming or a ``trained:`` spec could pick up. State files hold only tensors
and plain Python values, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probe.adaptation import ADAPTATION_FILE
from probe.errors import StudyError

__all__ = [
    "ARCHITECTURE_KEYS",
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "architecture",
    "check_architecture",
    "find_resume_point",
    "get_rng_state",
    "load_state",
    "prune_optimizer_states",
    "quiet_progress",
    "save_checkpoint",
    "save_final",
    "set_rng_state",
]

STATE_FILE = "training_state.pt"
OPTIMIZER_FILE = "optimizer.pt"
FORMAT_VERSION = 1
ARCHITECTURE_KEYS = (
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "max_position_embeddings", "type_vocab_size", "num_labels",
)  # fmt: skip


def architecture(config: Any) -> dict[str, Any]:
    """The size-defining fields of a model config (a ``PretrainedConfig``)."""
    return {key: getattr(config, key, None) for key in ARCHITECTURE_KEYS}


def check_architecture(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Refuse to resume into a model whose architecture differs from the checkpoint's.

    Raises
    ------
    StudyError
        Naming every differing field with both values.
    """
    diffs = [
        f"{k}: {saved.get(k)!r} in checkpoint, {current.get(k)!r} in study"
        for k in ARCHITECTURE_KEYS
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise StudyError(
            f"{where}: cannot resume, the architecture does not match ({'; '.join(diffs)}); "
            "restore the study's model settings, or run without --resume to start afresh"
        )


# --------------------------------------------------------------------------- RNG states


def get_rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU) and every CUDA device, as plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.array(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- saving


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence transformers' progress bars (saving and loading shards) inside the block."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():  # a stale folder from an interrupted attempt at the same step
        shutil.rmtree(target)
    os.replace(tmp, target)


def save_checkpoint(
    folder: Path,
    *,
    model: Any,
    tokenizer: Any,
    state: dict[str, Any],
    optimizer_state: dict[str, Any] | None,
    adaptation: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint folder atomically (see module docstring); returns ``folder``.

    ``adaptation`` (LoRA, adapters, scalar mix: :mod:`probe.adaptation`) is written as
    ``adaptation.json``, which tells :func:`probe.models.load_model` to rebuild those modules.
    """
    tmp = folder.parent / f".tmp-{folder.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with quiet_progress():  # no "Writing model shards" bar for every checkpoint
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if adaptation is not None:
        (tmp / ADAPTATION_FILE).write_text(json.dumps(adaptation, indent=2), encoding="utf-8")
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp / STATE_FILE)
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    _replace_dir(tmp, folder)
    return folder


def save_final(step_dir: Path, final_dir: Path, state: dict[str, Any]) -> Path:
    """``final/``: the last step's weights and tokenizer (hard links when the filesystem allows)."""
    tmp = final_dir.parent / f".tmp-{final_dir.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for path in step_dir.iterdir():
        if path.name in (STATE_FILE, OPTIMIZER_FILE) or not path.is_file():
            continue
        try:
            os.link(path, tmp / path.name)
        except OSError:
            shutil.copy2(path, tmp / path.name)
    torch.save({"format_version": FORMAT_VERSION, **state}, tmp / STATE_FILE)
    _replace_dir(tmp, final_dir)
    return final_dir


def prune_optimizer_states(job_dir: Path, keep: int) -> None:
    """Delete ``optimizer.pt`` from all but the newest ``keep`` step checkpoints.

    Older checkpoints keep their weights (the landscape stage reads the trajectory); only the
    newest is needed to resume, and optimizer states are twice the model's size.
    """
    with_optimizer = [p for p in _step_dirs(job_dir) if (p / OPTIMIZER_FILE).exists()]
    for folder in with_optimizer[:-keep] if keep > 0 else with_optimizer:
        (folder / OPTIMIZER_FILE).unlink()


# --------------------------------------------------------------------------- loading


def _step_dirs(job_dir: Path) -> list[Path]:
    """``step-<N>`` folders of a job, oldest first."""
    if not job_dir.is_dir():
        return []
    found = [
        p
        for p in job_dir.iterdir()
        if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[5:]))


def find_resume_point(job_dir: Path) -> Path | None:
    """The newest ``step-<N>`` that holds everything needed to resume, or None."""
    for folder in reversed(_step_dirs(job_dir)):
        if all((folder / name).exists() for name in (STATE_FILE, OPTIMIZER_FILE, "config.json")):
            return folder
    return None


def load_state(folder: Path, *, optimizer: bool = False) -> dict[str, Any]:
    """The training state of a checkpoint folder (and, if asked, its optimizer state)."""
    state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    if optimizer:
        state["optimizer_state"] = torch.load(
            folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True
        )
    return state
