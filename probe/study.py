"""The study file: one YAML document, validated into typed objects before any work starts.

A study names the models to compare and the stages to run on them. Each stage has its own typed
section; a section that is absent is a stage that is skipped. Unknown keys are rejected and every
problem is reported at once with its YAML path, e.g.::

    studies/x.yaml: probe.pooling: 'firts' is not one of first, mean, last

Each stage's section schema is a pure pydantic leaf module of the stage's package
(``probe/<stage>/config.py``) and is listed in the stage registry (:mod:`probe.stages`); this
module adds one optional field per registered stage to :class:`Study`. Checks that need models or
data files run afterwards, all of them at once, in :func:`probe.validate.check_study`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from probe._schema import PathName, Seed, StrictModel
from probe._yaml import (
    MAX_ECHO,
    DuplicateKeyError,
    YAMLShapeError,
    safe_load_checked,
    short_repr,
    shorten,
)
from probe.errors import StudyError
from probe.probes.config import CaptureSection, ProbeSection, SpanSection
from probe.stages import STAGE_NAMES, STAGES

# A study is a few kB of YAML; anything beyond this is the wrong file (or an attack).
MAX_STUDY_BYTES = 1 << 20

__all__ = [
    "CaptureSection",
    "ModelEntry",
    "ProbeSection",
    "SpanSection",
    "StrictModel",
    "Study",
    "load_study",
    "parse_study",
    "schema_problems",
]


class ModelEntry(StrictModel):
    """One model to study.

    ``spec`` follows the model-spec contract of :mod:`probe.models`; ``name`` is the label used in
    tables and figures (defaults to the spec).
    """

    spec: str
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.spec


class StudyBase(StrictModel):
    """What every study has besides its stage sections (added from the registry below)."""

    name: PathName
    description: str = ""
    seed: Seed = 0
    models: Annotated[list[ModelEntry], Field(min_length=1)] = [ModelEntry(spec="embedded:minilm")]
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    runs_dir: str = "runs"
    capture: CaptureSection = CaptureSection()
    figures: list[Literal["html", "png", "svg", "pdf"]] = ["html", "png"]
    # Experiment trackers, as transformers' TrainingArguments.report_to (probe.trackers).
    report_to: (
        Literal["none", "all", "tensorboard", "wandb", "mlflow"]
        | list[Literal["tensorboard", "wandb", "mlflow"]]
    ) = "none"

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, value: Any) -> Any:
        # Let users write `models: [embedded:minilm, scratch:embedded:minilm]`.
        if isinstance(value, list):
            return [{"spec": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _unique_model_labels(self) -> StudyBase:
        labels = [m.label for m in self.models]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, got {duplicates} twice; add `name:`")
        return self

    @model_validator(mode="after")
    def _trained_models_have_a_train_section(self) -> StudyBase:
        from probe.errors import ProbeError
        from probe.model_spec import ModelSpec

        trained = []
        for entry in self.models:
            try:
                if ModelSpec.parse(entry.spec).trained_job is not None:
                    trained.append(entry.label)
            except ProbeError:
                continue  # a malformed spec is reported by the model check
        if trained and getattr(self, "train", None) is None:
            raise ValueError(
                f"{', '.join(trained)} need the train section that makes them; add `train:` "
                "or use run:<folder> for a model trained by an earlier run"
            )
        return self

    @property
    def stages(self) -> list[str]:
        """Stages this study runs (its sections that are set), in execution order."""
        return [name for name in STAGE_NAMES if getattr(self, name) is not None]


# One optional section per registered stage: a new stage needs no edit here.
Study = create_model(  # type: ignore[call-overload]
    "Study",
    __base__=StudyBase,
    __doc__="A whole study: what to compare (``models``) and which stages to run on them.",
    __module__=__name__,
    **{stage.name: (stage.section | None, None) for stage in STAGES},
)


_TASK_TAGS = ("builtin", "file")


def _format_error(error: dict[str, Any]) -> str:
    loc = error["loc"]
    # Drop pydantic's union tags ("probe.tasks.1.file.label" -> "probe.tasks.1.label").
    kept = [
        p for i, p in enumerate(loc)
        if not (p in _TASK_TAGS and i and isinstance(loc[i - 1], int))
    ]  # fmt: skip
    # "[key]" marks an error in a mapping's key (probe.limit.trian.[key]): the key is named.
    path = ".".join(str(p) for p in kept if not str(p).startswith("function-") and p != "[key]")
    if error["type"] == "model_type" and kept[-2:-1] == ["tasks"]:
        return (
            f"{path}: a task is a built-in name or a mapping with name, format and path "
            f"(got {error['input']!r})"
        )
    ctx = error.get("ctx") or {}
    if error["type"] == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        message = f"{short_repr(error['input'])} is not one of {allowed}"
        choices = [c.strip() for c in allowed.split(",")]
        close = difflib.get_close_matches(short_repr(error["input"]).strip("'"), choices, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = shorten(error["msg"].removeprefix("Value error, "))
    path = shorten(path, MAX_ECHO)
    return f"{path}: {message}" if path else message


def parse_study(data: Any, source: str = "<study>") -> Study:
    """Validate a parsed YAML mapping into a :class:`Study`.

    Raises
    ------
    StudyError
        One line per problem, each prefixed with ``source`` and the YAML path.
    """
    if not isinstance(data, dict):
        raise StudyError(f"{source}: a study must be a YAML mapping, got {type(data).__name__}")
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_format_error(e)}" for e in exc.errors()]
        partial = _without_broken_sections(data, exc)
        raise StudyError.of(lines, partial=partial) from None


def _without_broken_sections(data: dict, exc: ValidationError) -> StudyBase | None:
    """The study without its invalid stage sections, if that is valid (else None).

    Lets validation run the file and model checks of the sections that are fine, so a study with
    mistakes in three sections reports all three at once, whatever kind each mistake is.
    """
    broken = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
    if not broken or not broken <= set(STAGE_NAMES):
        return None
    try:
        return Study.model_validate({k: v for k, v in data.items() if k not in broken})
    except ValidationError:
        return None


def _read_mapping(path: Path) -> Any:
    if not path.is_file():
        raise StudyError(
            f"{path}: study file not found; pass a path like studies/layerwise_pos.yaml"
        )
    if path.stat().st_size > MAX_STUDY_BYTES:
        raise StudyError(
            f"{path}: {path.stat().st_size} bytes is not a study file (limit "
            f"{MAX_STUDY_BYTES // 1024} KiB); pass the study's YAML file"
        )
    try:
        return safe_load_checked(path.read_text(encoding="utf-8"))
    except YAMLShapeError as exc:
        raise StudyError(f"{path}: {exc}") from None
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise StudyError(f"{path}: line {mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise StudyError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
    except UnicodeDecodeError:
        raise StudyError(f"{path}: not a text file; a study is a UTF-8 YAML file") from None


def schema_problems(data: Any) -> list[str]:
    """The schema problems of a study mapping, one line each (empty when it is valid)."""
    if not isinstance(data, dict):
        return [f"a study must be a YAML mapping, got {type(data).__name__}"]
    try:
        Study.model_validate(data)
    except ValidationError as exc:
        return [_format_error(e) for e in exc.errors()]
    return []


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read and validate a study file; every user mistake becomes a :class:`StudyError`.

    ``overrides`` are ``--set`` strings (``probe.limit.train=500``, see :mod:`probe.overrides`),
    applied to the file's mapping before validation. An override that breaks the study is
    reported as its own problem and left out, so the rest of the study is still checked.
    """
    path = Path(path)
    data = _read_mapping(path)
    problems: list[str] = []
    if overrides and isinstance(data, dict):
        from probe.overrides import apply_overrides

        data, _, problems = apply_overrides(data, overrides, schema_problems)
    try:
        study = parse_study(data, source=str(path))
    except StudyError as exc:
        if not problems:
            raise
        lines = [*exc.problems, *(f"{path}: {p}" for p in problems)]
        raise StudyError.of(lines, partial=exc.partial) from None
    if problems:
        raise StudyError.of([f"{path}: {p}" for p in problems], partial=study)
    return study
