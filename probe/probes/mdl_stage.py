"""MDL part of the ``probe`` stage (``probe.mdl: true``): online code lengths, tidy rows, summary.

For every model, task and seed, :func:`mdl_rows` computes the online code length
(:func:`probe.probes.mdl.online_codelength`) of the task's training labels and of its control
task's labels (Hewitt & Liang; the same seed) on every layer. Rows of ``results/mdl.parquet``
(``split`` is ``train``: the code transmits the training labels; the dev split only chooses each
block's L2 strength):

==========================  ==========  ====================================================
metric                      control     value
==========================  ==========  ====================================================
``codelength``              task/ctrl   online code length in bits, per layer
``compression``             task/ctrl   uniform code length / online code length, per layer
``uniform_codelength``      task/ctrl   ``N log2 K`` bits (layer empty)
``block_codelength``        task/ctrl   bits of one block, per layer; ``portion`` = the
                                        fraction of sentences at the end of the block
``selectivity_bits``        task        control minus task code length, per layer
==========================  ==========  ====================================================
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.data import TaskData, word_types
from probe.errors import StudyError
from probe.probes.checks import MDL_MIN_SENTENCES
from probe.probes.control import ControlTask
from probe.probes.mdl import VOITA_TIMESTAMPS, OnlineCode, online_codelength

__all__ = ["MDL_TOL", "check_mdl_sentences", "mdl_rows", "mdl_tables"]

#: Gradient tolerance of the block probes (measured: code lengths within 0.5 % of 1e-4's).
MDL_TOL = 1e-3


def check_mdl_sentences(tasks: Sequence[TaskData]) -> None:
    """Raise :class:`StudyError` unless every task has enough training sentences *with targets*.

    Validation can only check ``probe.limit.train`` (sentences of the file); a pair or span task
    has targets in fewer of them (UD EWT: 953 of the first 1000 sentences have a dependency arc,
    one-word sentences have none), and the online code's first block is 0.1 % of the sentences
    that have targets. Called once the tasks are loaded, before any model is.
    """
    problems = []
    for task in tasks:
        n = len(np.unique(task.splits["train"].targets[:, 0]))
        if n < MDL_MIN_SENTENCES:
            problems.append(
                f"probe.mdl: task {task.name} has targets in {n} training sentences; online "
                f"coding needs at least {MDL_MIN_SENTENCES} (its first block is 0.1 % of them): "
                "raise probe.limit.train or remove it"
            )
    if problems:
        raise StudyError.of(problems)


def _code_rows(code: OnlineCode, layers: Sequence[int], control: str, **common) -> list[dict]:
    rows = [
        {"layer": pd.NA, "metric": "uniform_codelength", "value": code.uniform_codelength,
         "control": control, **common},
    ]  # fmt: skip
    compression = code.compression
    for i, layer in enumerate(layers):
        rows.append(
            {"layer": layer, "metric": "codelength", "value": code.codelength[i],
             "control": control, **common}
        )  # fmt: skip
        rows.append(
            {"layer": layer, "metric": "compression", "value": compression[i],
             "control": control, **common}
        )  # fmt: skip
        for b, portion in enumerate(code.fractions[1:]):
            rows.append(
                {"layer": layer, "metric": "block_codelength", "value": code.block_bits[i, b],
                 "portion": portion, "control": control, **common}
            )  # fmt: skip
    return rows


def mdl_rows(
    ctx,
    task: TaskData,
    X: dict[str, np.ndarray],
    layers: Sequence[int],
    seed: int,
    model_label: str,
    kwargs: dict,
) -> list[dict]:
    """Online code lengths of ``task`` and its control task on every layer, for one seed.

    ``kwargs`` are the probe's settings (``standardize``, ``device``, ``Cs``) as for the task
    probe; ``n_classes`` is the number of training labels ``K`` (labels seen only in dev/test are
    not part of the transmitted data).
    """
    train = task.splits["train"]
    y = train.labels
    n_classes = int(y.max()) + 1  # train labels come first, so they are exactly 0..K-1
    types = {s: word_types(task.splits[s]) for s in ("train", "dev")}
    control = ControlTask(seed=seed).fit(types["train"], y)  # the probe stage's control labels
    labels = {
        "task": (y, task.splits["dev"].labels),
        "control": (control.transform(types["train"]), control.transform(types["dev"])),
    }
    # tol 1e-3: code lengths within 0.5 % of tol 1e-4, 1.6x faster (see probe.probes.mdl)
    settings = {"tol": MDL_TOL, **{k: kwargs[k] for k in ("standardize", "device") if k in kwargs}}
    if "Cs" in kwargs:
        settings["Cs"] = kwargs["Cs"]
    common = {"model": model_label, "task": task.name, "probe": "linear", "seed": seed,
              "split": "train"}  # fmt: skip
    rows: list[dict] = []
    codes = {}
    for name, (y_train, y_dev) in labels.items():
        start = time.perf_counter()
        with Progress(
            TextColumn(f"  {task.name} MDL ({name})"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TimeElapsedColumn(),
            console=ctx.console,
            transient=True,
        ) as bar:
            job = bar.add_task("mdl", total=len(VOITA_TIMESTAMPS) - 1)
            codes[name] = online_codelength(
                X["train"],
                y_train,
                train.targets[:, 0],
                X["dev"],
                y_dev,
                n_classes=n_classes,
                seed=seed,
                progress=lambda n, job=job: bar.advance(job, n),
                **settings,
            )
        ctx.console.print(
            f"  {task.name}: online code ({name}) on {len(layers)} layers in "
            f"{time.perf_counter() - start:.1f} s"
        )
        rows += _code_rows(codes[name], layers, name, **common)
    selectivity = codes["control"].codelength - codes["task"].codelength
    for i, layer in enumerate(layers):
        rows.append(
            {"layer": layer, "metric": "selectivity_bits", "value": selectivity[i],
             "control": "task", **common}
        )  # fmt: skip
    return rows


def mdl_tables(mdl: pd.DataFrame, probe: pd.DataFrame | None = None) -> list[Table]:
    """Per task: codelength (kbits) and compression, task and control, per layer and model.

    With the probe table, a last column says whether MDL ranks the layers as dev accuracy
    does (Spearman correlation between -codelength and dev accuracy over layers; best layers).
    """
    tables = []
    per_layer = mdl[mdl.layer.notna()]
    for task, rows in per_layer.groupby("task", sort=False):
        means = rows.groupby(["model", "control", "metric", "layer"], sort=False).value.mean()
        layers = sorted(rows.layer.astype(int).unique())
        table = Table(
            "model",
            "",
            *(str(layer) for layer in layers),
            "best",
            title=f"{task}: online codelength in kbits (compression), mean over seeds",
        )
        for model in rows.model.drop_duplicates():
            for control in ("task", "control"):
                cells, lengths = [], []
                for layer in layers:
                    bits = means.get((model, control, "codelength", layer))
                    ratio = means.get((model, control, "compression", layer))
                    lengths.append(np.inf if bits is None else bits)
                    cells.append("-" if bits is None else f"{bits / 1000:.1f} ({ratio:.1f})")
                best = str(layers[int(np.argmin(lengths))])
                table.add_row(str(model), control, *cells, best)
        tables.append(table)
    if probe is not None and not per_layer.empty:
        tables.append(_ranking_table(per_layer, probe))
    return tables


def _ranking_table(mdl: pd.DataFrame, probe: pd.DataFrame) -> Table:
    from scipy.stats import spearmanr

    table = Table(
        "model", "task", "best layer (MDL)", "best layer (dev acc)", "best layer (test acc)",
        "Spearman(-codelength, test acc)",
        title="do MDL and accuracy rank the layers alike? (task labels)",
    )  # fmt: skip
    code = mdl[(mdl.control == "task") & (mdl.metric == "codelength")]
    acc = probe[
        (probe.probe == "linear") & (probe.control == "task") & (probe.metric == "accuracy")
    ]
    for (model, task), rows in code.groupby(["model", "task"], sort=False):
        bits = rows.groupby("layer").value.mean()
        scores = acc[(acc.model == model) & (acc.task == task)]
        dev = scores[scores.split == "dev"].groupby("layer").value.mean()
        test = scores[scores.split == "test"].groupby("layer").value.mean()
        common = bits.index.intersection(test.index)
        rho = spearmanr(-bits[common], test[common]).statistic if len(common) > 2 else np.nan
        table.add_row(
            str(model),
            str(task),
            str(int(bits.idxmin())),
            str(int(dev.idxmax())) if len(dev) else "-",
            str(int(test.idxmax())) if len(test) else "-",
            f"{rho:.2f}",
        )
    return table
