"""The pinned schema of every results table: its columns, their dtypes and what they mean.

Every table is long (tidy): the core columns :data:`CORE` in this order, then the table's own
columns. ``probe`` and ``control`` mean one thing per table (said in :class:`TableSchema`); a
column that does not apply holds a missing value. Rows are built with :meth:`TableSchema.row`,
which refuses a column the schema does not list (a typo would otherwise become a new column), and
:meth:`TableSchema.frame` gives the written frame: every column, in order, with its dtype.

Torch-free: the dashboard and its tests build fixture tables from these schemas.

>>> SCHEMAS["probe"].row(model="m", task="upos", layer=3, split="test", metric="accuracy",
...                      value=0.9, probe="linear", control="task", seed=0)["layer"]
3
>>> SCHEMAS["probe"].row(modle="m")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: table probe has no column 'modle' (did you mean 'model'?); its columns: ...
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CORE", "SCHEMAS", "SCHEMA_VERSION", "Column", "TableSchema", "schema"]

#: Bumped when a table's columns change meaning. 2: ``embeddings`` got ``pooling``,
#: ``pooling_spec`` and ``whitening`` columns (version 1 kept them in ``probe``, ``pooling`` and
#: ``control``); :func:`probe.results.read_table` upgrades version-1 tables on read.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Column:
    """One column: its name, pandas dtype (``str`` columns are left as pandas infers them) and
    what it means."""

    name: str
    dtype: str
    meaning: str


#: The columns every table starts with, in this order.
CORE: tuple[Column, ...] = (
    Column("study", "str", "the study's name"),
    Column("model", "str", "the model's label (study models), or the training job's name"),
    Column("checkpoint", "str", "step, `final` or `last` of a trained model; NA otherwise"),
    Column("task", "str", "the task or dataset scored"),
    Column("layer", "Int64", "layer 0..L (0 = embedding output); NA when no single layer"),
    Column("probe", "str", "what reads the representation (per table, see TableSchema.probe)"),
    Column("control", "str", "which labels it is scored on (per table, see TableSchema.control)"),
    Column("seed", "Int64", "the seed of the fit, control task, bootstrap or job"),
    Column("split", "str", "train, dev or test"),
    Column("metric", "str", "the metric's name"),
    Column("value", "float64", "the metric's value"),
)


@dataclass(frozen=True)
class TableSchema:
    """The columns of one results table.

    Attributes
    ----------
    name : the table's name (``results/<name>.parquet``).
    columns : its own columns, after :data:`CORE`.
    probe, control : what the core columns ``probe`` and ``control`` mean in this table.
    """

    name: str
    columns: tuple[Column, ...]
    probe: str
    control: str

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return (*CORE, *self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.all_columns)

    def check_columns(self, names: Iterable[str]) -> None:
        """Raise ValueError naming the first column that this table does not have."""
        known = self.names
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"table {self.name} has no column {name!r}{hint}; its columns: "
                    f"{', '.join(known)} (add new ones to probe/schemas.py)"
                )

    def row(self, **values: object) -> dict[str, object]:
        """One result row; a column the schema does not list raises ValueError."""
        self.check_columns(values)
        return values

    def frame(self, rows: pd.DataFrame | Iterable[Mapping[str, object]], **constants: object):
        """The table as written: every column in schema order, numeric columns cast.

        ``constants`` fill columns that are the same for all rows (e.g. ``study=...``).
        """
        frame = pd.DataFrame(rows).copy()
        for name, value in constants.items():
            frame[name] = value
        self.check_columns(frame.columns)
        for column in self.all_columns:
            if column.name not in frame:
                frame[column.name] = np.nan if column.dtype == "float64" else pd.NA
            if column.dtype == "Int64":
                frame[column.name] = pd.array(frame[column.name], dtype="Int64")
            elif column.dtype == "float64":
                frame[column.name] = frame[column.name].astype(float)
        return frame[list(self.names)].reset_index(drop=True)


UNUSED = "not used (NA)"

_CI = (
    Column("ci_low", "float64", "lower end of the 95% bootstrap interval (test accuracy)"),
    Column("ci_high", "float64", "upper end of the 95% bootstrap interval (test accuracy)"),
)

#: Which trained job a landscape row is about (NA for checkpoints not written by probe's training).
_LANDSCAPE_JOB = (
    Column("arm", "str", "the setting the job is one seed of (its `arm`, else its name)"),
    Column("init", "str", "pretrained, or scratch (a `scratch:` model spec)"),
    Column("pair", "str", "the model spec both inits share (scratch: prefix removed)"),
)

#: Every results table, by name (the stage registry, :mod:`probe.stages`, says which stage writes
#: which; a test pins the two lists equal).
SCHEMAS: dict[str, TableSchema] = {
    schema.name: schema
    for schema in (
        TableSchema(
            "probe",
            _CI,
            probe="`linear`: the layer's logistic probe; `majority`: the majority-class baseline",
            control="`task`: the task's labels; `control`: the control task's labels "
            "(Hewitt & Liang 2019); `selectivity` rows are task minus control",
        ),
        TableSchema(
            "probe_summary",
            (),
            probe="`mix`: scalar mix of all layers; `mix-k`: scalar mix of layers 0..k",
            control="`task`: the task's labels",
        ),
        TableSchema(
            "mdl",
            (
                Column(
                    "portion",
                    "float64",
                    "block_codelength rows: fraction of the training "
                    "sentences at the end of the block; NA otherwise",
                ),
            ),
            probe="`linear`: the online code of the layer's logistic probes (Voita & Titov 2020)",
            control="`task`: the task's labels; `control`: the control task's labels; "
            "`selectivity_bits` rows (control minus task code length) are `task`",
        ),
        TableSchema(
            "structural",
            (Column("rank", "Int64", "columns of the probe matrix B"),),
            probe="`structural`: the layer's distance or depth probe (Hewitt & Manning 2019); "
            "`linear`: the baseline linking each word to the next (no layer)",
            control="`task`: the gold tree",
        ),
        TableSchema(
            "structural_example",
            (
                Column("rank", "Int64", "columns of the probe matrix B"),
                Column("sentence", "Int64", "index of the sentence in the test split"),
                Column("i", "Int64", "word position (word rows); first word of an arc (i < j)"),
                Column("j", "Int64", "second word of an arc; NA for word rows"),
                Column("word", "str", "the word (word rows); NA for arcs"),
            ),
            probe="`structural`: the distance probe whose tree is drawn",
            control="`task`: the gold tree",
        ),
        TableSchema(
            "training",
            (
                Column("kind", "str", "the job's kind: pretrain or finetune"),
                Column("arm", "str", "the setting the job is one seed of (ablations)"),
                Column(
                    "strategy",
                    "str",
                    "fine-tuning strategy: full, freeze, top, features, lora, adapter "
                    "(+mix, +llrd); NA for pretraining",
                ),
                Column("step", "Int64", "optimizer step; NA for constants (baselines, speed)"),
                Column("epoch", "float64", "epochs done at that step"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "embeddings",
            (
                Column("pooling", "str", "the pooling's name: cls, pooler, mean, ..."),
                Column("whitening", "str", "raw, center, whiten or whiten-<k>"),
                Column("fit_on", "str", "the corpus the whitening was fitted on (NA for raw)"),
                Column("n", "int64", "pairs (STS) or sentences (isotropy) scored"),
                Column("pooling_spec", "str", "the pooling with explicit layers, e.g. mean@1+6"),
                Column("layers", "str", "the layers it averages, e.g. 1+6; NA for the pooler"),
                Column("headline", "bool", "listed in `poolings` (not only added by `layerwise`)"),
            ),
            probe="not used (NA): sentence vectors are scored by cosine similarity, no probe",
            control=UNUSED,
        ),
        TableSchema(
            "landscape_trajectory",
            (
                *_LANDSCAPE_JOB,
                Column("step", "Int64", "training step of the checkpoint"),
                Column("x", "float64", "position on the PCA plane's 1st axis (with pca_plane)"),
                Column("y", "float64", "position on the PCA plane's 2nd axis (with pca_plane)"),
                Column("pc1_variance", "float64", "variance share of the 1st PC of the path (pca)"),
                Column("pc2_variance", "float64", "variance share of the 2nd PC of the path (pca)"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "landscape_1d",
            (
                *_LANDSCAPE_JOB,
                Column("alpha", "float64", "position on the line: 0 initial, 1 final weights"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "landscape_2d",
            (
                *_LANDSCAPE_JOB,
                Column("plane", "str", "random or pca"),
                Column("x", "float64", "coordinate along the first direction"),
                Column("y", "float64", "coordinate along the second direction"),
                Column("pc1_variance", "float64", "variance share of the 1st PC of the path (pca)"),
                Column("pc2_variance", "float64", "variance share of the 2nd PC of the path (pca)"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "sharpness",
            (
                *_LANDSCAPE_JOB,
                Column("radius", "float64", "filter-normalised radius of the loss rise"),
                Column("n_directions", "Int64", "random directions averaged at the radius"),
                Column("iterations", "Int64", "power iterations of the Hessian eigenvalue"),
                Column("converged", "object", "whether the power iteration converged"),
                Column("dominant_eigenvalue", "float64", "largest-magnitude eigenvalue"),
                Column("n_parameters", "Int64", "parameters counted in the distance"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "landscape_layers",
            (
                *_LANDSCAPE_JOB,
                Column("part", "str", "embeddings (layer 0), layer.<l>, or head (layer NA)"),
                Column("alpha", "float64", "only this part at lerp(initial, final, alpha)"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "landscape_convergence",
            (
                *_LANDSCAPE_JOB,
                Column("step", "Int64", "checked step (curve and end-point rows)"),
                Column("threshold", "float64", "training-subset loss of the *_to_loss rows"),
            ),
            probe=UNUSED,
            control=UNUSED,
        ),
        TableSchema(
            "cka",
            (
                Column("model_b", "str", "the model compared with `model` (itself: layer x layer)"),
                Column("layer_b", "Int64", "the layer of `model_b` compared with `layer`"),
                Column("n", "Int64", "words the CKA is computed on"),
                Column("d", "Int64", "width of the random baseline's first matrix"),
                Column("d_b", "Int64", "width of the random baseline's second matrix"),
            ),
            probe="`linear_cka`: linear CKA (metric cka_biased or cka_unbiased)",
            control="`task`: the sample's word vectors; `random`: two independent Gaussian "
            "matrices of the same shape (the baseline; `seed` numbers the draw)",
        ),
        TableSchema(
            "attention",
            (
                Column("head", "Int64", "attention head 0..H-1 of `layer` (1..L)"),
                Column("relation", "str", "UD relation (universal part), or `all`"),
                Column("offset", "Int64", "the fixed offset k of an `offset` baseline row"),
                Column("n", "Int64", "attending tokens, or scored dependents, behind the value"),
            ),
            probe="`attention`: one head's attention map; `offset`: the fixed-offset baseline",
            control="`task`: UD English EWT annotations",
        ),
    )
}


def schema(name: str) -> TableSchema:
    """The schema of table ``name`` (KeyError naming the known tables otherwise)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"no table {name!r}; tables: {', '.join(SCHEMAS)}") from None
