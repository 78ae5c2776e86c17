"""The ``similarity`` stage: which layers change (CKA), and what attention heads look at.

``cka``: word vectors of a fixed sentence sample (``similarity.cka.data``, pooled as the study's
``capture`` section says, from the shared feature cache) at every layer of every model; linear
CKA, biased and unbiased, of every layer against every layer of the same model (``within``) and of
every model against the ``reference`` model, plus the random-matrix baseline of the same shape.
Table ``results/cka``: one row per ``model, layer, model_b, layer_b, metric`` with ``metric``
``cka_biased`` or ``cka_unbiased``; baseline rows have ``control = random``, ``model = random``,
one row per draw (``seed``), and the widths ``d``, ``d_b``.

``attention``: every head of the chosen models on UD English EWT (see
:mod:`probe.similarity.attention`). Table ``results/attention``: ``probe = attention`` rows per
``model, layer, head, metric[, relation]``; ``probe = offset`` rows are the fixed-offset baseline
per ``relation`` and ``offset`` (no model).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.data import dataset_file, read_conllu, read_sst2
from probe.data.tasks import TaskSplit
from probe.models import Encoder, load_encoder
from probe.rundir import RunContext
from probe.similarity.attention import analyse_heads, attention_maps, offset_baseline
from probe.similarity.cka import cka_matrix, random_baseline
from probe.similarity.config import CKA_CORPORA, AttentionSection, CKASection
from probe.similarity.summary import MOSTLY, best_heads, mostly_shares

__all__ = ["KEY_RELATIONS", "run_similarity"]

#: Relations printed by the stage (the rest are in the table).
KEY_RELATIONS = (
    "all", "nsubj", "obj", "det", "amod", "case", "advmod", "aux", "mark", "conj", "compound",
)  # fmt: skip


def _checkpoint(spec: str) -> str | None:
    return spec.rpartition("@")[2] if "@" in spec else None


# --------------------------------------------------------------------------- CKA


def cka_sentences(data: str, limit: int | None) -> tuple[list[tuple[str, ...]], Path]:
    """Words of the first ``limit`` sentences of a CKA sample, and the file they come from."""
    corpus, _, split = data.partition(":")
    path = dataset_file(CKA_CORPORA[corpus][0], split)
    if corpus == "sst2":
        # GLUE SST-2 is lower-cased and PTB-tokenised upstream: whitespace splits the words.
        sentences = [tuple(e.sentence.split()) for e in read_sst2(path)]
    else:
        sentences = [s.words for s in read_conllu(path)]
    return [s for s in sentences[:limit] if s], path


def _word_features(ctx: RunContext, encoder: Encoder, sentences, path: Path, label: str):
    from probe.probes.features import split_features
    from probe.probes.stage import _resolve_layers

    layers = _resolve_layers(ctx.study.capture.layers, encoder.n_layers, label)
    # split_features caches by sentences and source file; CKA needs no targets.
    split = TaskSplit(
        sentences=tuple(sentences),
        targets=np.zeros((0, 3), dtype=np.int64),
        labels=np.zeros(0, dtype=np.int64),
        source=path,
    )
    return split_features(ctx, encoder, split, layers, f"{label}/cka")


def _cka_rows(result, model: str, model_b: str, layers, layers_b, **extra) -> list[dict]:
    rows = []
    for estimator in ("biased", "unbiased"):
        values = result[estimator]
        for i, layer in enumerate(layers):
            for j, layer_b in enumerate(layers_b):
                rows.append(
                    {"model": model, "layer": layer, "model_b": model_b, "layer_b": layer_b,
                     "metric": f"cka_{estimator}", "value": float(values[i, j]), **extra}
                )  # fmt: skip
    return rows


def run_cka(ctx: RunContext, section: CKASection) -> pd.DataFrame:
    """CKA tables of every model (within) and against the reference model; see module doc."""
    sentences, path = cka_sentences(section.data, section.limit)
    labels = [m.label for m in ctx.study.models]
    reference = section.reference or labels[0]
    ctx.console.print(
        f"CKA sample: {section.data}, {len(sentences)} sentences, "
        f"{sum(map(len, sentences))} words ({ctx.study.capture.pooling} subword pooling)"
    )
    feats, checkpoints = {}, {}
    for entry in ctx.study.models:
        encoder = load_encoder(
            entry.spec, seed=ctx.study.seed, device=ctx.device, run_dir=ctx.run_dir
        )
        feats[entry.label] = _word_features(ctx, encoder, sentences, path, entry.label)
        checkpoints[entry.label] = _checkpoint(entry.spec)
        del encoder
    common = {"task": section.data, "split": section.data.partition(":")[2], "probe": "linear_cka"}
    rows: list[dict] = []
    for label in labels:
        f = feats[label]
        n = f.features.shape[1]
        extra = {**common, "control": "task", "checkpoint": checkpoints[label], "n": n}
        if section.within is True or (isinstance(section.within, list) and label in section.within):
            start = time.perf_counter()
            result = cka_matrix(f.features, batch_size=section.batch_size)
            rows += _cka_rows(result, label, label, f.layers, f.layers, **extra)
            ctx.console.print(
                f"  {label}: layer x layer CKA on {n} words in {time.perf_counter() - start:.1f} s"
            )
        if label != reference:
            start = time.perf_counter()
            g = feats[reference]
            result = cka_matrix(f.features, g.features, batch_size=section.batch_size)
            rows += _cka_rows(result, label, reference, f.layers, g.layers, **extra)
            ctx.console.print(
                f"  {label} vs {reference}: CKA of every layer pair in "
                f"{time.perf_counter() - start:.1f} s"
            )
    shapes = {(feats[label].features.shape[2], feats[reference].features.shape[2])
              for label in labels}  # fmt: skip
    n = feats[reference].features.shape[1]
    for d_a, d_b in sorted(shapes):
        draws = random_baseline(
            n, d_a, d_b, seed=ctx.study.seed, draws=section.baseline_draws,
            batch_size=section.batch_size,
        )  # fmt: skip
        for estimator, values in draws.items():
            rows += [
                {**common, "model": "random", "model_b": "random", "control": "random",
                 "metric": f"cka_{estimator}", "value": float(v), "seed": draw, "n": n,
                 "d": d_a, "d_b": d_b}
                for draw, v in enumerate(values)
            ]  # fmt: skip
    return pd.DataFrame(rows)


def _baseline_text(frame: pd.DataFrame, metric: str) -> str:
    values = frame[(frame.control == "random") & (frame.metric == metric)].value
    return f"{values.mean():+.4f} ± {values.std(ddof=0):.1e} (sd of {len(values)} draws)"


def cka_tables(frame: pd.DataFrame, reference: str) -> list[Table]:
    """Console tables: the reference's layer x layer map, and CKA by layer against it."""
    tables = []
    real = frame[frame.control == "task"]
    within = real[(real.model == reference) & (real.model_b == reference)]
    for metric in ("cka_biased", "cka_unbiased"):
        part = within[within.metric == metric]
        if part.empty:
            continue
        grid = part.pivot(index="layer", columns="layer_b", values="value")
        table = Table(
            title=f"{reference}: layer x layer {metric} "
            f"(random baseline {_baseline_text(frame, metric)})"
        )
        table.add_column("layer")
        for layer in grid.columns:
            table.add_column(str(int(layer)), justify="right")
        for layer, values in grid.iterrows():
            table.add_row(str(int(layer)), *(f"{v:.3f}" for v in values))
        tables.append(table)
    across = real[(real.model != reference) & (real.model_b == reference)]
    across = across[across.layer == across.layer_b]
    if not across.empty:
        table = Table(
            title=f"CKA of layer l with layer l of {reference} (random baseline: biased "
            f"{_baseline_text(frame, 'cka_biased')}, "
            f"unbiased {_baseline_text(frame, 'cka_unbiased')})"
        )
        table.add_column("model")
        table.add_column("estimator")
        layers = sorted(across.layer.unique())
        for layer in layers:
            table.add_column(str(int(layer)), justify="right")
        for (model, metric), part in across.groupby(["model", "metric"], sort=False):
            values = part.set_index("layer").value
            table.add_row(
                str(model),
                metric.removeprefix("cka_"),
                *(f"{values[layer]:.3f}" for layer in layers),
            )
        tables.append(table)
    return tables


# --------------------------------------------------------------------------- attention


def run_attention(ctx: RunContext, section: AttentionSection) -> pd.DataFrame:
    """Head measures of the chosen models and the offset baseline on UD English EWT."""
    path = dataset_file("ud_english_ewt", section.split)
    sentences = read_conllu(path)[: section.limit]
    task = f"ud_english_ewt:{section.split}"
    chosen = section.models or [m.label for m in ctx.study.models]
    frames = []
    for entry in ctx.study.models:
        if entry.label not in chosen:
            continue
        # Eager attention only here: the fused kernel never forms the attention weights.
        encoder = load_encoder(
            entry.spec,
            seed=ctx.study.seed,
            device=ctx.device,
            run_dir=ctx.run_dir,
            attn_implementation="eager",
        )
        config = encoder.model.config
        skipped: list[int] = []
        start = time.perf_counter()
        with Progress(
            TextColumn(f"  {entry.label}: attention"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sentences"),
            TimeElapsedColumn(),
            console=ctx.console,
            transient=True,
        ) as bar:
            job = bar.add_task("attention", total=len(sentences))
            maps = attention_maps(
                encoder.model,
                encoder.tokenizer,
                [s.words for s in sentences],
                batch_tokens=section.batch_tokens,
                precision=ctx.study.precision,
                skipped=skipped,
            )
            frame = analyse_heads(
                maps,
                sentences,
                int(config.num_hidden_layers),
                int(config.num_attention_heads),
                progress=lambda k, job=job: bar.advance(job, k),
            )
        ctx.console.print(
            f"  {entry.label}: {len(sentences) - len(skipped)} sentences, "
            f"{int(config.num_hidden_layers)} layers x {int(config.num_attention_heads)} heads "
            f"in {time.perf_counter() - start:.1f} s"
            + (f"; {len(skipped)} longer than the model's limit skipped" if skipped else "")
        )
        frames.append(
            frame.assign(model=entry.label, checkpoint=_checkpoint(entry.spec), probe="attention")
        )
        del encoder
    baseline = offset_baseline(sentences)
    frames.append(
        pd.DataFrame(
            {
                "relation": baseline.relation,
                "offset": baseline.offset,
                "n": baseline.n,
                "metric": "dep_accuracy",
                "value": baseline.accuracy,
                "probe": "offset",
            }
        )
    )
    table = pd.concat(frames, ignore_index=True)
    return table.assign(task=task, split=section.split, control="task")


def attention_tables(table: pd.DataFrame) -> list[Table]:
    """Console tables: best head per relation vs the offset baseline; 'mostly' shares by layer."""
    out = []
    best = best_heads(table)
    for model, part in best.groupby("model", sort=False):
        t = Table(
            title=f"{model}: most-attended word = dependency head (Clark et al. 2019); "
            "head = layer-head, layer 1..L, head 0..H-1"
        )
        for name in ("relation", "n", "best head", "accuracy", "best offset", "offset acc",
                     "best either direction", "accuracy "):  # fmt: skip
            t.add_column(name, justify="left" if name == "relation" else "right")
        order = [r for r in KEY_RELATIONS if r in set(part.relation)]
        for relation in order:
            row = part[part.relation == relation].iloc[0]
            t.add_row(
                relation,
                str(int(row.n)),
                f"{int(row.layer)}-{int(row['head'])}",
                f"{100 * row.accuracy:.1f}",
                f"{int(row.offset):+d}",
                f"{100 * row.offset_accuracy:.1f}",
                f"{int(row.either_layer)}-{int(row.either_head)} {row.either_direction}",
                f"{100 * row.either_accuracy:.1f}",
            )
        out.append(t)
    shares = mostly_shares(table)
    for model, part in shares.groupby("model", sort=False):
        t = Table(title=f"{model}: share of heads with > {MOSTLY:.0%} of their attention on")
        for name in ("layer", "[CLS]", "[SEP]", "punct.", "any of them"):
            t.add_column(name, justify="right")
        for _, row in part.iterrows():
            t.add_row(
                str(int(row.layer)),
                *(f"{row[c]:.2f}" for c in ("attn_cls", "attn_sep", "attn_punct", "attn_special")),
            )
        out.append(t)
    return out


# --------------------------------------------------------------------------- stage


def run_similarity(ctx: RunContext) -> None:
    """Run the similarity stage of ``ctx.study`` (see module docstring)."""
    section = ctx.study.similarity
    assert section is not None
    if section.cka is not None:
        frame = run_cka(ctx, section.cka)
        ctx.write_table("cka", frame)
        reference = section.cka.reference or ctx.study.models[0].label
        for table in cka_tables(ctx.read_table("cka"), reference):
            ctx.console.print(table)
    if section.attention is not None:
        frame = run_attention(ctx, section.attention)
        ctx.write_table("attention", frame)
        for table in attention_tables(ctx.read_table("attention")):
            ctx.console.print(table)
