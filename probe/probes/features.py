"""Word features of the probe stage: captured once per model and split, kept in the feature cache,
then turned into probe inputs (words, spans or pairs of spans).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from probe.cache import WordFeatures, sentences_digest
from probe.capture import capture_words
from probe.data import TaskData, TaskSplit, file_sha256
from probe.models import Encoder
from probe.probes.config import ProbeSection
from probe.probes.spans import pair_features, span_features, word_features
from probe.rundir import RunContext

__all__ = ["CAPTURE_VERSION", "one_word_spans", "probe_inputs", "split_features"]

# Bump when capture changes in a way that alters stored features.
CAPTURE_VERSION = 1


@cache
def _file_hash(path: Path) -> str:
    return file_sha256(path)


# --------------------------------------------------------------------------- features


def split_features(
    ctx: RunContext, encoder: Encoder, split: TaskSplit, layers: Sequence[int], label: str
) -> WordFeatures:
    """Word vectors of one split: from the cache, or captured now and cached."""
    capture = ctx.study.capture
    key = ctx.cache.key(
        version=CAPTURE_VERSION,
        model=encoder.fingerprint,
        data=_file_hash(split.source),
        sentences=sentences_digest(split.sentences),
        pooling=capture.pooling,
        layers=list(layers),
        max_length=capture.max_length,
        stride=capture.stride,
    )
    cached = ctx.cache.get(key)
    if cached is not None:
        ctx.console.print(
            f"  {label}: capture skipped, features cached ({cached.nbytes / 2**20:.0f} MiB, "
            f"{cached.path})"
        )
        return cached
    lengths = np.array([len(s) for s in split.sentences])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    start = time.perf_counter()
    with Progress(
        TextColumn(f"  {label}: capture"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("words"),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as bar:
        job = bar.add_task("capture", total=int(offsets[-1]))

        def fill(out: np.ndarray) -> None:
            _, plan = capture_words(
                encoder.model,
                encoder.tokenizer,
                split.sentences,
                layers=layers,
                pooling=capture.pooling,
                batch_tokens=capture.batch_tokens,
                max_length=capture.max_length,
                stride=capture.stride,
                precision=ctx.study.precision,
                out=out,
                progress=lambda n: bar.advance(job, n),
            )
            fill.plan = plan  # type: ignore[attr-defined]

        entry = ctx.cache.put(
            key,
            shape=(len(layers), int(offsets[-1]), encoder.d_model),
            offsets=offsets,
            layers=layers,
            fill=fill,
            meta={
                "model": encoder.source.spec,
                "source": str(split.source),
                "pooling": capture.pooling,
            },
        )
    plan = fill.plan  # type: ignore[attr-defined]
    ctx.console.print(
        f"  {label}: captured {len(split.sentences)} sentences, {int(offsets[-1])} words in "
        f"{time.perf_counter() - start:.1f} s; padding {plan.padding_share_unsorted:.0%} -> "
        f"{plan.padding_share:.0%} with length bucketing; cache {entry.nbytes / 2**20:.0f} MiB"
    )
    return entry


def one_word_spans(task: TaskData) -> bool:
    """Whether every span of every target of ``task`` (all splits) is a single word."""
    return all(
        bool(np.all(split.targets[:, 2::2] - split.targets[:, 1::2] == 1))
        for split in task.splits.values()
    )


def probe_inputs(
    task: TaskData, split: TaskSplit, feats: WordFeatures, section: ProbeSection
) -> np.ndarray:
    """Probe inputs of shape (n_layers, n_targets, D) for the task's kind."""
    if task.kind == "word":
        return word_features(feats.features, feats.offsets, split.targets)
    how = tuple(section.span.repr)
    if one_word_spans(task):
        # Dependency arcs join two words: a one-word span's mean and endpoints are the same
        # vector, so [mean, start, end] would only triple the width (and the fit time) without
        # adding information. Decided per task, so every split gets the same width.
        how = ("mean",)
    if task.kind == "span":
        return span_features(feats.features, feats.offsets, split.targets, how=how)
    return pair_features(
        feats.features, feats.offsets, split.targets, how=how, product=section.span.pair_product
    )
