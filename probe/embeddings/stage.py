"""The ``embeddings`` stage: sentence vectors (pooling x whitening) scored on STS, plus isotropy.

For every model of the study:

1. every sentence the section needs (the STS pairs of each task and split, and the whitening fit
   corpora) is encoded once: one forward pass per length-bucketed batch, hooks on the layers the
   poolings read, base vectors (``cls@l``, ``mean@l``, ``mean_nospecial@l``, ``pooler``) kept in
   the content-addressed feature cache, so a rerun or another study skips the model;
2. each pooling (:mod:`probe.embeddings.pooling`) is scored raw and with each whitening variant
   (:mod:`probe.embeddings.whitening`) fitted on each ``fit_on`` corpus: Spearman and Pearson x 100
   of cosine similarity against the gold scores, per task and split;
3. isotropy (:mod:`probe.embeddings.isotropy`) of the vectors of ``isotropy_splits``, before and
   after each transform.

Results: ``results/embeddings.parquet`` (columns pinned in :mod:`probe.schemas`) with ``pooling``
= pooling name, ``layer`` = its single layer (NA when it averages several, or for the pooler),
``whitening`` = variant (``raw``, ``center``, ``whiten``, ``whiten-256``, ...), ``task`` =
``stsb``/``sickr``, ``metric`` = ``spearman``/``pearson`` (x 100), ``avg_cosine``,
``top{k}_variance_share``; ``pooling_spec`` (explicit spelling, e.g. ``mean@1+6``), ``layers``,
``fit_on``, ``n`` (pairs or sentences scored) and ``headline`` (listed in ``poolings``, not only
added by ``layerwise``). ``probe`` and ``control`` are empty: no probe is fitted.
Figures (drawn by the runner from the table): ``embeddings_sts_<task>``, ``embeddings_layers``,
``embeddings_isotropy``.
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.data import dataset_file, read_documents, read_sst2
from probe.embeddings.config import EmbeddingsSection
from probe.embeddings.isotropy import isotropy
from probe.embeddings.pooling import Pooling, encode_sentences, pool, resolve_pooling
from probe.embeddings.sts import load_sts, sts_scores
from probe.embeddings.whitening import Whitening, parse_variant
from probe.errors import StudyError
from probe.models import Encoder, ModelSpec, load_encoder
from probe.rundir import RunContext
from probe.schemas import SCHEMAS

__all__ = ["run_embeddings"]

# Bump when encoding changes in a way that alters stored vectors.
ENCODING_VERSION = 1
TABLE = "embeddings"
EMBEDDINGS = SCHEMAS[TABLE]
_ALL_SPLITS = ("train", "dev", "test")


# --------------------------------------------------------------------------- sentences


@dataclass
class _Corpora:
    """Every sentence the section needs, deduplicated, and index arrays into that list."""

    sentences: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    pairs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )  # (task, split) -> (rows of sentence1, rows of sentence2, gold)
    fit: dict[str, np.ndarray] = field(default_factory=dict)  # fit corpus -> rows (duplicates kept)

    def rows(self, sentences: list[str] | tuple[str, ...]) -> np.ndarray:
        for sentence in sentences:
            if sentence not in self.index:
                self.index[sentence] = len(self.sentences)
                self.sentences.append(sentence)
        return np.array([self.index[s] for s in sentences], dtype=np.int64)


def _named_corpus(name: str, split: str) -> list[str]:
    if name in ("stsb", "sickr"):
        data = load_sts(name, split)
        return [*data.sentences1, *data.sentences2]
    if name == "sst2":
        return [example.sentence for example in read_sst2(dataset_file("sst2_glue", split))]
    return [s for document in read_documents("wikitext2", split=split) for s in document]


def _load_corpora(section: EmbeddingsSection, seed: int) -> _Corpora:
    corpora = _Corpora()
    pair_splits = set(section.splits) | (set(_ALL_SPLITS) if "target" in section.fit_on else set())
    for entry, task in zip(section.tasks, section.task_names, strict=True):
        for split in _ALL_SPLITS:
            if split not in pair_splits:
                continue
            data = load_sts(entry, split, section.limit, seed)
            corpora.pairs[(task, split)] = (
                corpora.rows(data.sentences1),
                corpora.rows(data.sentences2),
                data.scores,
            )
        if "target" in section.fit_on:
            # BERT-whitening's "target" setting: both sides of every pair of every split.
            corpora.fit[f"target:{task}"] = np.concatenate(
                [np.concatenate(corpora.pairs[(task, s)][:2]) for s in _ALL_SPLITS]
            )
    rng = np.random.default_rng(seed)
    for corpus in section.fit_on:
        if corpus == "target":
            continue
        name, _, split = corpus.partition(":")
        sentences = _named_corpus(name, split)
        if section.fit_limit is not None and len(sentences) > section.fit_limit:
            keep = np.sort(rng.choice(len(sentences), section.fit_limit, replace=False))
            sentences = [sentences[i] for i in keep]
        corpora.fit[corpus] = corpora.rows(sentences)
    return corpora


def _fit_key(corpus: str, task: str) -> str:
    return f"target:{task}" if corpus == "target" else corpus


# --------------------------------------------------------------------------- vectors


def _poolings(section: EmbeddingsSection, n_layers: int) -> list[tuple[Pooling, bool]]:
    """Resolved poolings, each with whether it is a headline one (listed in ``poolings``)."""
    resolved: dict[str, tuple[Pooling, bool]] = {}
    for spec in section.poolings:
        try:
            pooling = resolve_pooling(spec, n_layers)
        except ValueError as exc:
            raise StudyError(f"embeddings.poolings: {exc}") from None
        resolved.setdefault(pooling.spec, (pooling, True))
    for kind in section.layerwise:
        for layer in range(n_layers + 1):
            pooling = resolve_pooling(f"{kind}@{layer}", n_layers)
            resolved.setdefault(pooling.spec, (pooling, False))
    return list(resolved.values())


def _base_vectors(
    ctx: RunContext, encoder: Encoder, sentences: list[str], features: list[str], label: str
) -> np.ndarray:
    """Base vectors of shape (n_features, n_sentences, d_model): cached, or encoded now."""
    section = ctx.study.embeddings
    assert section is not None
    digest = hashlib.sha256("\x1e".join(sentences).encode()).hexdigest()[:16]
    key = ctx.cache.key(
        kind="sentence-vectors",
        version=ENCODING_VERSION,
        model=encoder.fingerprint,
        sentences=digest,
        features=features,
        max_length=section.max_length,
        # bf16/fp16 autocast changes the vectors on CUDA; CPU always runs in float32.
        precision=ctx.study.precision if ctx.device.type == "cuda" else "fp32",
    )
    cached = ctx.cache.get(key)
    if cached is not None:
        ctx.console.print(f"  {label}: encoding skipped, vectors cached ({cached.path})")
        return cached.features
    start = time.perf_counter()
    with Progress(
        TextColumn(f"  {label}: encode"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sentences"),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as bar:
        job = bar.add_task("encode", total=len(sentences))

        def fill(out: np.ndarray) -> None:
            encode_sentences(
                encoder.model,
                encoder.tokenizer,
                sentences,
                features,
                batch_tokens=section.batch_tokens,
                max_length=section.max_length,
                precision=ctx.study.precision,
                out=out,
                progress=lambda n: bar.advance(job, n),
            )

        entry = ctx.cache.put(
            key,
            shape=(len(features), len(sentences), encoder.d_model),
            offsets=np.arange(len(sentences) + 1),
            layers=range(len(features)),  # rows are named features, listed in meta
            fill=fill,
            meta={"features": features, "model": encoder.source.spec, "kind": "sentence-vectors"},
        )
    ctx.console.print(
        f"  {label}: encoded {len(sentences)} sentences x {len(features)} vectors in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return entry.features


# --------------------------------------------------------------------------- scoring


def _transformed(
    vectors: np.ndarray,
    rows: np.ndarray,
    corpora: _Corpora,
    section: EmbeddingsSection,
    task: str,
    fitted: dict[tuple[str, str], Whitening],
) -> Iterator[tuple[str, str | None, np.ndarray]]:
    """``(variant, fit corpus, vectors[rows] transformed)`` for every variant and fit corpus.

    ``fitted`` memoises fits by (fit corpus, center|whiten) across tasks, so a named corpus is
    fitted once. Each fit transforms the task's sentences once; ``whiten-k`` is then the first
    ``k`` columns of ``whiten`` (``W[:, :k]`` are W's first k columns, so this equals
    ``Whitening(n_components=k)``, see :meth:`Whitening.truncate`), not another product.
    """
    X = np.asarray(vectors[rows], dtype=np.float64)
    full: dict[tuple[str, str], np.ndarray] = {}
    for variant in section.whitening:
        kind, k = parse_variant(variant)
        if kind == "raw":
            yield variant, None, X
            continue
        for corpus in section.fit_on:
            key = (_fit_key(corpus, task), kind)
            if key not in fitted:
                fitted[key] = Whitening(whiten=kind == "whiten").fit(vectors[corpora.fit[key[0]]])
            if key not in full:
                full[key] = fitted[key].transform(X)
            Y = full[key]
            if k is not None:
                if k > Y.shape[1]:
                    raise StudyError(
                        f"embeddings.whitening: {variant!r} keeps {k} dimensions but the vectors "
                        f"have {Y.shape[1]}; use a smaller k"
                    )
                Y = Y[:, :k]
            yield variant, corpus, Y


def _score_pooling(
    vectors: np.ndarray, corpora: _Corpora, section: EmbeddingsSection
) -> list[dict]:
    """Rows (task, split, whitening, fit_on, metric, value, n) for one pooling's vectors."""
    rows: list[dict] = []
    fitted: dict[tuple[str, str], Whitening] = {}
    for task in section.task_names:
        pairs = {split: corpora.pairs[(task, split)] for split in section.splits}
        # The task's sentences, each transformed once; pairs index into them by position.
        task_rows = np.unique(np.concatenate([np.concatenate(p[:2]) for p in pairs.values()]))
        local = {
            split: (np.searchsorted(task_rows, first), np.searchsorted(task_rows, second), gold)
            for split, (first, second, gold) in pairs.items()
        }
        for variant, corpus, Y in _transformed(vectors, task_rows, corpora, section, task, fitted):
            for split, (first, second, gold) in local.items():
                common = {"task": task, "split": split, "whitening": variant, "fit_on": corpus}
                scores = sts_scores(Y[first], Y[second], gold)
                rows += [
                    {**common, "metric": m, "value": v, "n": len(gold)} for m, v in scores.items()
                ]
                if split in section.isotropy_splits:
                    unique = np.unique(np.concatenate([first, second]))
                    measures = isotropy(Y[unique], section.isotropy_top_k)
                    rows += [
                        {**common, "metric": m, "value": v, "n": len(unique)}
                        for m, v in measures.items()
                    ]
    return rows


def _summary(ctx: RunContext, table: pd.DataFrame) -> None:
    """STS-B (or the first task) test Spearman: poolings x variants, models side by side."""
    section = ctx.study.embeddings
    assert section is not None
    task = section.task_names[0]
    split = "test" if "test" in section.splits else section.splits[-1]
    picked = table[
        (table.task == task)
        & (table.split == split)
        & (table.metric == "spearman")
        & table.headline
    ]
    if picked.empty:
        return
    label = picked.whitening.where(
        picked.fit_on.isna() | (len(section.fit_on) == 1),
        picked.whitening + " (" + picked.fit_on.fillna("") + ")",
    )
    wide = picked.assign(variant=label).pivot_table(
        index=["pooling_spec", "variant"], columns="model", values="value", sort=False
    )
    models = [m.label for m in ctx.study.models if m.label in wide.columns]
    view = Table(
        "pooling",
        "whitening",
        *models,
        title=f"{task} {split}: Spearman x 100 of cosine similarity",
    )
    for (pooling, variant), values in wide.iterrows():
        view.add_row(pooling, variant, *(f"{values[m]:.2f}" for m in models))
    ctx.console.print(view)


# --------------------------------------------------------------------------- stage


def run_embeddings(ctx: RunContext) -> None:
    """Run the embeddings stage of ``ctx.study``; writes ``results/embeddings``."""
    study = ctx.study
    section = study.embeddings
    assert section is not None
    corpora = _load_corpora(section, study.seed)
    ctx.console.print(
        f"{len(corpora.sentences)} unique sentences: tasks {', '.join(section.task_names)}, "
        f"fit corpora {', '.join(section.fit_on)}"
    )
    rows: list[dict] = []
    for entry in study.models:
        label = entry.label
        checkpoint = ModelSpec.parse(entry.spec).checkpoint_label
        encoder = load_encoder(entry.spec, seed=study.seed, device=ctx.device, run_dir=ctx.run_dir)
        poolings = _poolings(section, encoder.n_layers)
        if getattr(encoder.model, "pooler", None) is None:
            dropped = [p.spec for p, _ in poolings if p.kind == "pooler"]
            if dropped:
                ctx.console.print(f"  [yellow]{label} has no pooler; skipping {dropped}[/yellow]")
            poolings = [(p, h) for p, h in poolings if p.kind != "pooler"]
        features = list(dict.fromkeys(f for p, _ in poolings for f in p.features))
        base = _base_vectors(ctx, encoder, corpora.sentences, features, label)
        start = time.perf_counter()
        for pooling, headline in poolings:
            vectors = pool(base, features, pooling)
            for row in _score_pooling(vectors, corpora, section):
                rows.append(
                    EMBEDDINGS.row(
                        model=label,
                        checkpoint=checkpoint,
                        pooling=pooling.name,
                        layer=pooling.layer,
                        seed=study.seed,
                        pooling_spec=pooling.spec,
                        layers="+".join(map(str, pooling.layers)) or None,
                        headline=headline,
                        **row,
                    )
                )
        ctx.console.print(
            f"  {label}: scored {len(poolings)} poolings x {len(section.whitening)} variants in "
            f"{time.perf_counter() - start:.1f} s"
        )
        del encoder, base
        gc.collect()
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    ctx.write_table(TABLE, rows)
    table = ctx.read_table(TABLE)
    _summary(ctx, table)
