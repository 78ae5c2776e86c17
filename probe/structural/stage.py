"""The ``structural`` stage: distance and depth probes on every layer, scored as in the paper.

For every model of the study: word vectors of UD English EWT train/dev/test (first ``limit``
sentences of each) come from the activation cache or are captured once (same cache entries as
the ``probe`` stage for the same pooling and sentences); for each task a rank-``rank`` probe is
fitted on all layers at once (:func:`probe.probes.structural.fit_structural_probes`), then
scored on dev and test. The linear-structure baseline (every word linked to the next: predicted
distance ``|i - j|``) needs no model and is scored once.

``results/structural.parquet`` (tidy): ``task`` (``distance``/``depth``), ``layer``, ``probe``
(``structural``, or ``linear`` for the baseline, layer empty), ``control`` (``task``), ``seed``,
``split`` (``dev``/``test``), ``metric`` and ``value``:

- distance: ``uuas``, ``dspr``; depth: ``root_accuracy``, ``nspr`` (fractions, not percent);
- both: ``loss`` (best dev loss, split ``dev``), ``epochs`` (the best dev epoch, counted from 1);
- plus the column ``rank``.

``results/structural_example.parquet``: one test sentence (``example``, default the first with
10 to 20 non-punctuation words) for the tree figure, in the same long format (``task``
``distance``, ``split`` ``test``) with the columns ``sentence``, ``i``, ``j`` and ``word``:
``metric`` = ``word`` (``i`` = position = ``value``, ``word`` its text), ``gold_arc`` or
``predicted_arc`` (per ``layer``): an undirected arc ``i``-``j`` (``i < j``) between
non-punctuation words, ``value`` = its length ``j - i``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.data import SPLITS, TaskSplit, dataset_file, read_conllu
from probe.data.conllu import UDSentence
from probe.errors import StudyError
from probe.probes.features import split_features
from probe.probes.stage import load_model_entry
from probe.probes.structural import fit_structural_probes, predict_structure
from probe.probes.trees import (
    dspr,
    is_punct,
    mst_edges,
    nspr,
    root_accuracy,
    tree_depths,
    tree_distances,
    uuas,
)

__all__ = ["run_structural", "structural_table"]

_GOLD = {"distance": tree_distances, "depth": tree_depths}
_EXAMPLE_WORDS = (10, 20)


@dataclass(frozen=True)
class _Split:
    """One EWT split: sentences for the capture, gold structures, non-punctuation masks."""

    capture: TaskSplit
    sentences: tuple[UDSentence, ...]
    gold: dict[str, list[np.ndarray]]
    keep: list[np.ndarray]

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(s.words) for s in self.sentences])])


def _load_splits(limit: dict) -> dict[str, _Split]:
    out = {}
    for split in SPLITS:
        path = dataset_file("ud_english_ewt", split)
        sentences = tuple(read_conllu(path))
        if limit.get(split) is not None:
            sentences = sentences[: limit[split]]
        capture = TaskSplit(
            tuple(s.words for s in sentences),
            np.zeros((0, 3), dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            path,
        )
        gold = {task: [fn(s.heads) for s in sentences] for task, fn in _GOLD.items()}
        keep = [~is_punct(s.xpos) for s in sentences]
        out[split] = _Split(capture, sentences, gold, keep)
    return out


def _example_index(split: _Split, requested: int | None) -> int:
    if requested is not None:
        if requested >= len(split.sentences):
            raise StudyError(
                f"structural.example: sentence {requested} is not among the "
                f"{len(split.sentences)} test sentences"
            )
        return requested
    low, high = _EXAMPLE_WORDS
    for index, mask in enumerate(split.keep):
        if low <= int(mask.sum()) <= high:
            return index
    return 0


def _scores(task: str, pred: list[np.ndarray], split: _Split) -> dict[str, float]:
    gold = split.gold[task]
    if task == "distance":
        return {"uuas": uuas(pred, gold, split.keep), "dspr": dspr(pred, gold)}
    return {"root_accuracy": root_accuracy(pred, gold, split.keep), "nspr": nspr(pred, gold)}


def _linear_baseline(splits: dict[str, _Split], common: dict) -> list[dict]:
    rows = []
    for name in ("dev", "test"):
        split = splits[name]
        chain = [
            np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(np.float64)
            for n in (len(s.words) for s in split.sentences)
        ]
        for metric, value in _scores("distance", chain, split).items():
            rows.append({"task": "distance", "layer": pd.NA, "probe": "linear", "split": name,
                         "metric": metric, "value": value, **common})  # fmt: skip
    return rows


def _fit(ctx, label: str, task: str, feats: dict, splits: dict[str, _Split], seed: int):
    section = ctx.study.structural
    with Progress(
        TextColumn(f"  {label}: {task} probe"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs (at most)"),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as bar:
        job = bar.add_task("fit", total=section.epochs)
        start = time.perf_counter()
        fit = fit_structural_probes(
            feats["train"].features,
            splits["train"].offsets,
            splits["train"].gold[task],
            feats["dev"].features,
            splits["dev"].offsets,
            splits["dev"].gold[task],
            kind=task,
            rank=section.rank,
            batch_size=section.batch_size,
            max_epochs=section.epochs,
            lr=section.lr,
            seed=seed,
            device=ctx.device,
            progress=lambda n: bar.advance(job, n),
        )
    ctx.console.print(
        f"  {label}: {task} probe (rank {section.rank}) on {len(splits['train'].sentences)} "
        f"sentences, {fit.epochs} epochs in {time.perf_counter() - start:.1f} s; best epoch per "
        f"layer {(fit.best_epoch + 1).tolist()}"
    )
    return fit


def structural_table(frame: pd.DataFrame) -> Table:
    """Test metrics by layer and model (x 100 for UUAS and root accuracy), best layer marked."""
    test = frame[(frame.split == "test") & (frame.probe == "structural")]
    layers = sorted(test.layer.dropna().astype(int).unique())
    table = Table(
        "model", "metric", *(str(layer) for layer in layers), "best", "linear",
        title="structural probes: test scores by layer (UUAS and root accuracy in %)",
    )  # fmt: skip
    baseline = frame[(frame.split == "test") & (frame.probe == "linear")]
    for model in test.model.drop_duplicates():
        for metric in ("uuas", "dspr", "root_accuracy", "nspr"):
            rows = test[(test.model == model) & (test.metric == metric)]
            if rows.empty:
                continue
            means = rows.groupby("layer").value.mean()
            scale = 100 if metric in ("uuas", "root_accuracy") else 1
            fmt = "{:.1f}" if scale == 100 else "{:.3f}"
            base = baseline[baseline.metric == metric].value
            table.add_row(
                str(model),
                metric,
                *(fmt.format(scale * means.get(layer, np.nan)) for layer in layers),
                str(int(means.idxmax())),
                fmt.format(scale * base.mean()) if len(base) else "-",
            )
    return table


def run_structural(ctx) -> None:
    """Run the structural stage of ``ctx.study`` (see module docstring)."""
    section = ctx.study.structural
    seed = ctx.study.seed if section.seed is None else section.seed
    splits = _load_splits(dict(section.limit))
    sizes = ", ".join(f"{name} {len(split.sentences)}" for name, split in splits.items())
    n_punct = sum(int((~k).sum()) for k in splits["test"].keep)
    ctx.console.print(
        f"structural probes on UD English EWT ({sizes} sentences); {n_punct} test words are "
        "punctuation by the reference's PTB tags and left out of UUAS and root accuracy"
    )
    example = _example_index(splits["test"], section.example)
    common = {"control": "task", "seed": seed, "rank": section.rank}
    rows = _linear_baseline(splits, {**common, "model": pd.NA, "checkpoint": pd.NA})
    example_rows: list[dict] = []
    for entry in ctx.study.models:
        ctx.console.print(f"[bold]model {entry.label}[/bold] ({entry.spec})")
        encoder, layers, checkpoint = load_model_entry(ctx, entry)
        where = {**common, "model": entry.label, "checkpoint": checkpoint}
        feats = {}
        for name, split in splits.items():
            with ctx.timed("features", model=entry.label, split=name):
                feats[name] = split_features(
                    ctx, encoder, split.capture, layers, f"structural/{name}"
                )
        sentence = splits["test"].sentences[example]
        keep = splits["test"].keep[example]
        at = {**where, "task": "distance", "probe": "structural", "split": "test",
              "sentence": example}  # fmt: skip
        example_rows += [
            {**at, "layer": pd.NA, "metric": "word", "value": i, "i": i, "j": pd.NA, "word": word}
            for i, word in enumerate(sentence.words)
        ]  # fmt: skip
        example_rows += [
            {**at, "layer": pd.NA, "metric": "gold_arc", "value": j - i, "i": i, "j": j,
             "word": pd.NA}
            for i, j in sorted(mst_edges(splits["test"].gold["distance"][example], keep))
        ]  # fmt: skip
        for task in section.tasks:
            with ctx.timed(f"{task} probe", model=entry.label, task=task):
                fit = _fit(ctx, entry.label, task, feats, splits, seed)
            for li, layer in enumerate(layers):
                rows.append(
                    {
                        **where,
                        "task": task,
                        "layer": layer,
                        "probe": "structural",
                        "split": "dev",
                        "metric": "loss",
                        "value": fit.dev_loss[li],
                    }
                )
                rows.append({**where, "task": task, "layer": layer, "probe": "structural",
                             "split": "dev", "metric": "epochs",
                             "value": float(fit.best_epoch[li] + 1)})  # fmt: skip
            for name in ("dev", "test"):
                split = splits[name]
                pred = predict_structure(
                    feats[name].features, split.offsets, fit.B, kind=task, device=ctx.device
                )
                for li, layer in enumerate(layers):
                    scores = _scores(task, [p[li] for p in pred], split)
                    rows += [
                        {**where, "task": task, "layer": layer, "probe": "structural",
                         "split": name, "metric": metric, "value": value}
                        for metric, value in scores.items()
                    ]  # fmt: skip
                if task == "distance" and name == "test":
                    for li, layer in enumerate(layers):
                        example_rows += [
                            {**at, "layer": layer, "metric": "predicted_arc", "value": j - i,
                             "i": i, "j": j, "word": pd.NA}
                            for i, j in sorted(mst_edges(pred[example][li], keep))
                        ]  # fmt: skip
        del encoder
    frame = pd.DataFrame(rows)
    ctx.write_table("structural", frame)
    ctx.write_table("structural_example", pd.DataFrame(example_rows))
    ctx.console.print(structural_table(frame))
