"""Checks that need the machine or each model's config (never its weights), part of validation.

Each of these used to fail only after a model had loaded (a traceback, or a late exit 2 after
minutes of work) or, worse, to be accepted: a capture layer past the model, ``max_length`` past
its position embeddings, ``freeze_layers`` past its layers, ``isotropy_top_k`` past its width,
``probe.mix`` over a layer subset, a capture stride that skips words, a GPU that is not there, a
``runs_dir`` that is a file. Every problem is
returned (one line each), so :func:`probe.validate.study_problems` reports them with the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probe.errors import ProbeError
from probe.model_spec import ModelSpec, read_config, resolve_model
from probe.study import Study

__all__ = ["bound_problems"]

_SPECIAL_TOKENS = 2  # [CLS] and [SEP] share a window with the words


def _shape(spec: str) -> tuple[int, int, int | None] | None:
    """``(n_layers, d_model, max positions)`` from the config of ``spec``; None when unknown
    (a ``trained:`` model, or a spec whose own problem is reported elsewhere)."""
    parsed = ModelSpec.parse(spec)
    if parsed.trained_job is not None:
        return None
    try:
        config = read_config(resolve_model(parsed))
    except (ProbeError, OSError):
        return None  # validate's model check reports it
    n_layers = config.get("num_hidden_layers", config.get("n_layers"))
    d_model = config.get("hidden_size", config.get("dim"))
    positions = config.get("max_position_embeddings")
    if not isinstance(n_layers, int) or not isinstance(d_model, int):
        return None
    return n_layers, d_model, positions if isinstance(positions, int) else None


def _environment(study: Study) -> list[str]:
    problems = []
    runs_dir = Path(study.runs_dir)
    try:
        is_file = runs_dir.exists() and not runs_dir.is_dir()
    except OSError as exc:  # a name too long for the file system
        return [f"runs_dir: {exc.strerror}; name a shorter folder"]
    if is_file:
        problems.append(f"runs_dir: {study.runs_dir} is a file; name a folder for run folders")
    if study.device in ("cuda", "mps"):
        import torch  # only for a study that asks for a GPU

        available = (
            torch.cuda.is_available()
            if study.device == "cuda"
            else torch.backends.mps.is_available()
        )
        if not available:
            problems.append(
                f"device: {study.device!r} is not available on this machine; use device: auto"
            )
    return problems


def _capture(study: Study, label: str, n_layers: int, positions: int | None) -> list[str]:
    capture, problems = study.capture, []
    probe = getattr(study, "probe", None)
    if probe is None:
        return problems
    if capture.layers != "all":
        beyond = sorted({layer for layer in capture.layers if layer > n_layers})
        if beyond:
            problems.append(f"capture.layers: {beyond} past model {label}'s layers 0..{n_layers}")
        if probe.mix:
            problems.append(
                "probe.mix: a scalar mix needs every layer, but capture.layers is a subset; set "
                "capture.layers: all or probe.mix: false"
            )
    window = capture.max_length or positions
    if capture.max_length is not None and positions is not None and capture.max_length > positions:
        problems.append(
            f"capture.max_length: {capture.max_length} is more than model {label}'s "
            f"{positions} positions; use at most {positions}"
        )
    if capture.stride and window is not None:  # 0 or None: half a window
        content = window - _SPECIAL_TOKENS
        if capture.stride >= content:
            problems.append(
                f"capture.stride: {capture.stride} must be less than {content} (a window "
                f"holds {content} word pieces of model {label}); a stride of a window or more "
                "skips words"
            )
    return problems


def _embeddings(study: Study, label: str, d_model: int, positions: int | None) -> list[str]:
    section, problems = getattr(study, "embeddings", None), []
    if section is None:
        return problems
    too_wide = sorted({k for k in section.isotropy_top_k if k > d_model})
    if too_wide:
        problems.append(
            f"embeddings.isotropy_top_k: {too_wide} more than model {label}'s {d_model} dimensions"
        )
    if section.max_length is not None and positions is not None and section.max_length > positions:
        problems.append(
            f"embeddings.max_length: {section.max_length} is more than model {label}'s "
            f"{positions} positions"
        )
    return problems


def _train(study: Study) -> list[str]:
    section, problems = getattr(study, "train", None), []
    for index, job in enumerate(getattr(section, "jobs", None) or []):
        if getattr(job, "kind", None) != "finetune":
            continue
        shape = _shape(job.model)
        if shape is None:
            continue
        n_layers, _, positions = shape
        where = f"train.jobs.{index} ({job.name})"
        if job.freeze_layers > n_layers + 1:
            problems.append(
                f"{where}.freeze_layers: {job.freeze_layers} but {job.model} has layers "
                f"0..{n_layers} (at most {n_layers + 1} to freeze)"
            )
        if (job.train_top_layers or 0) > n_layers:
            problems.append(
                f"{where}.train_top_layers: {job.train_top_layers} but {job.model} has "
                f"{n_layers} encoder layers"
            )
        if positions is not None and job.max_length > positions:
            problems.append(
                f"{where}.max_length: {job.max_length} is more than {job.model}'s {positions} "
                "positions"
            )
    return problems


def bound_problems(study: Study) -> list[str]:
    """Every problem of the study against this machine and its models' configs (no weights)."""
    problems = _environment(study)
    embeddings: Any = getattr(study, "embeddings", None)
    if embeddings is not None and not embeddings.poolings and not embeddings.layerwise:
        problems.append("embeddings: poolings and layerwise are both empty; name at least one")
    for entry in study.models:
        shape = _shape(entry.spec)
        if shape is None:
            continue
        n_layers, d_model, positions = shape
        problems += _capture(study, entry.label, n_layers, positions)
        problems += _embeddings(study, entry.label, d_model, positions)
    problems += _train(study)
    return list(dict.fromkeys(problems))  # a bound broken by several models: said once
