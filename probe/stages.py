"""The stage registry: the one list of stages, their study sections, tables, figures and checks.

Everything that needs to know which stages exist reads :data:`STAGES`: the study schema
(:class:`probe.study.Study` gets one optional section per stage), validation
(:func:`probe.validate.check_study`), the runner, :mod:`probe.runs`, ``probe export`` and the
dashboard. Adding a stage is one package ``probe/<stage>/`` (``config.py``: the section schema;
``stage.py``: the entry point that writes tables; optionally ``checks.py``) plus one entry here;
see "Adding a stage" in the README.

This module imports only the section schemas (pure pydantic leaves): entry points, checks and
figure builders are named as ``"module:function"`` strings and imported when used, so reading the
registry never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from probe._schema import StrictModel
from probe.embeddings.config import EmbeddingsSection
from probe.landscape.config import LandscapeSection
from probe.probes.config import ProbeSection
from probe.similarity.config import SimilaritySection
from probe.structural.config import StructuralSection
from probe.training.config import TrainSection

__all__ = [
    "STAGES",
    "STAGE_NAMES",
    "FigureGroup",
    "Stage",
    "TableSpec",
    "figure_groups",
    "load_function",
    "stage",
    "stage_of_table",
]


def load_function(target: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"`` (imported now)."""
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class TableSpec:
    """A results table a stage writes.

    Attributes
    ----------
    name : file name under ``results/`` (without suffix).
    setting : for a table written only when the study asks for it, the setting that asks (said
        to the user when a finished run lacks the table); ``None`` for a table always written.
    """

    name: str
    setting: str | None = None


@dataclass(frozen=True)
class FigureGroup:
    """One kind of result and the figures drawn from it (a dashboard page section, an export).

    Attributes
    ----------
    key : short name (``probe``, ``summary``, ...).
    title : heading for the dashboard.
    stage : the stage that writes the tables.
    tables : tables the builder needs (all of them; written by ``stage``).
    build : ``"module:function"``, a function ``(tables, style, **options) -> {name: figure}``
        (options a builder does not know are ignored).
    optional : tables the builder uses when present (of any stage: the runner redraws the group
        after each stage that writes one of its tables).
    """

    key: str
    title: str
    stage: str
    tables: tuple[str, ...]
    build: str
    optional: tuple[str, ...] = ()

    @property
    def all_tables(self) -> tuple[str, ...]:
        return (*self.tables, *self.optional)


@dataclass(frozen=True)
class Stage:
    """One stage of a study.

    Attributes
    ----------
    name : the stage name, which is also its study section's key (``probe:`` in the YAML).
    section : the section's schema (a pure pydantic leaf module of the stage's package).
    run : ``"module:function"``, the entry point ``(RunContext) -> None`` that writes the tables.
    tables : the tables it writes, the main one first (always written when the stage finishes).
    figures : the figure groups drawn from its tables.
    check : ``"module:function"``, ``(Study) -> list[str]``: problems that need models or files,
        found before any work starts (``None``: the schema says everything).
    figures_setting : a boolean field of the section that turns the stage's figures off in the
        run folder (``train.figures``); ``None``: figures are always drawn.
    """

    name: str
    section: type[StrictModel]
    run: str
    tables: tuple[TableSpec, ...]
    figures: tuple[FigureGroup, ...] = ()
    check: str | None = None
    figures_setting: str | None = None

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)


#: Every stage, in execution order.
STAGES: tuple[Stage, ...] = (
    Stage(
        name="train",
        section=TrainSection,
        run="probe.training.stage:run_training",
        tables=(TableSpec("training"),),
        figures=(
            FigureGroup("training", "Training curves", "train", ("training",),
                        "probe.figures.groups:training_figures"),
            FigureGroup("ablations", "Pretraining ablations", "train", ("training",),
                        "probe.figures.groups:ablation_figures", optional=("probe",)),
            FigureGroup("strategies", "Fine-tuning strategies", "train", ("training",),
                        "probe.figures.groups:strategy_figures"),
        ),
        check="probe.training.checks:check_train",
        figures_setting="figures",
    ),
    Stage(
        name="probe",
        section=ProbeSection,
        run="probe.probes.stage:run_probes",
        tables=(TableSpec("probe"), TableSpec("probe_summary", "`probe.mix: true`"),
                TableSpec("mdl", "`probe.mdl: true`")),
        figures=(
            FigureGroup("probe", "Layer-wise probes", "probe", ("probe",),
                        "probe.figures.groups:probe_figures"),
            FigureGroup("summary", "Cross-task summary", "probe", ("probe_summary",),
                        "probe.figures.groups:summary_figures"),
            FigureGroup("mdl", "MDL probes (online code length)", "probe", ("mdl",),
                        "probe.figures.groups:mdl_figures"),
        ),
        check="probe.probes.checks:check_probe",
    ),
    Stage(
        name="embeddings",
        section=EmbeddingsSection,
        run="probe.embeddings.stage:run_embeddings",
        tables=(TableSpec("embeddings"),),
        figures=(
            FigureGroup("embeddings", "Sentence embeddings", "embeddings", ("embeddings",),
                        "probe.figures.groups:embeddings_figures"),
        ),
        check="probe.embeddings.checks:check_embeddings",
    ),
    Stage(
        name="landscape",
        section=LandscapeSection,
        run="probe.landscape.stage:run_landscape",
        tables=(
            TableSpec("landscape_trajectory"),
            TableSpec("landscape_1d", "`landscape.line`"),
            TableSpec("landscape_2d", "`landscape.random_plane` or `landscape.pca_plane`"),
            TableSpec("sharpness", "`landscape.sharpness`"),
            TableSpec("landscape_layers", "`landscape.layers`"),
            TableSpec("landscape_convergence", "`landscape.convergence`"),
        ),
        figures=(
            FigureGroup("landscape", "Loss landscapes", "landscape", ("landscape_trajectory",),
                        "probe.figures.groups:landscape_figures",
                        optional=("landscape_1d", "landscape_2d", "sharpness",
                                  "landscape_layers", "landscape_convergence")),
        ),
        check="probe.landscape.checks:check_landscape",
    ),
    Stage(
        name="similarity",
        section=SimilaritySection,
        run="probe.similarity.stage:run_similarity",
        tables=(TableSpec("cka", "`similarity.cka`"),
                TableSpec("attention", "`similarity.attention`")),
        figures=(
            FigureGroup("cka", "Layer similarity (CKA)", "similarity", ("cka",),
                        "probe.figures.groups:cka_figures"),
            FigureGroup("attention", "Attention heads", "similarity", ("attention",),
                        "probe.figures.groups:attention_figures"),
        ),
        check="probe.similarity.checks:check_similarity",
    ),
    Stage(
        name="structural",
        section=StructuralSection,
        run="probe.structural.stage:run_structural",
        tables=(TableSpec("structural"), TableSpec("structural_example")),
        figures=(
            FigureGroup("structural", "Structural probes", "structural", ("structural",),
                        "probe.figures.groups:structural_figures",
                        optional=("structural_example",)),
        ),
        check="probe.structural.checks:check_structural",
    ),
)  # fmt: skip

#: Stage names in execution order.
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)

_BY_NAME = {s.name: s for s in STAGES}
_STAGE_OF_TABLE = {t.name: s.name for s in STAGES for t in s.tables}


def stage(name: str) -> Stage:
    """The registered stage ``name`` (KeyError naming the known stages otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no stage {name!r}; stages: {', '.join(STAGE_NAMES)}") from None


def stage_of_table(table: str) -> str | None:
    """The stage that writes ``table`` (None for a table no stage registers)."""
    return _STAGE_OF_TABLE.get(table)


def figure_groups() -> tuple[FigureGroup, ...]:
    """Every figure group, in the order of the stages that write their tables."""
    return tuple(group for s in STAGES for group in s.figures)
