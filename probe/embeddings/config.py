"""Study section of the embeddings stage: poolings x whitening variants, scored on STS.

Example (every key optional; these are the defaults)::

    embeddings:
      tasks: [stsb, sickr]                 # STS Benchmark, SICK relatedness, or your pairs:
                                           # {name: my_sts, format: tsv, path: pairs.tsv}
      splits: [train, dev, test]
      poolings: [cls, pooler, mean, mean_nospecial, first_last_avg]
      layerwise: [mean]                    # also <kind>@l for every layer l = 0..L
      whitening: [raw, center, whiten, whiten-256, whiten-128]
      fit_on: [target]                     # or stsb:train, sickr:train, sst2:train, wikitext2:dev
      isotropy_top_k: [1, 10]
      isotropy_splits: [test]              # a subset of splits
      batch_tokens: 8192
      max_length: null                     # model limit
      limit: null                          # pairs per split (quick runs)
      fit_limit: 20000                     # sentences of a named fit corpus

``fit_on: target`` fits the whitening on every sentence of the evaluated task (train, dev and test,
both sides of each pair), as BERT-whitening's "target" setting; a named corpus
``<corpus>:<split>`` fits it once on that corpus and applies it to every task.

A leaf module (pure pydantic); the checks that need models or files are in
:mod:`probe.embeddings.checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from probe._schema import StrictModel
from probe.data.sources import PairFile
from probe.embeddings.pooling_spec import check_pooling_spec
from probe.embeddings.whitening import parse_variant

__all__ = ["FIT_CORPORA", "EmbeddingsSection"]

#: Named fit corpora: ``<name>:<split>`` -> (registered dataset, allowed splits).
FIT_CORPORA = {
    "stsb": ("stsbenchmark", ("train", "dev", "test")),
    "sickr": ("sick", ("train", "dev", "test")),
    "sst2": ("sst2_glue", ("train", "dev", "test")),
    "wikitext2": ("wikitext2", ("dev", "test")),
}


def _check_fit_corpus(value: str) -> str:
    if value == "target":
        return value
    name, _, split = value.partition(":")
    if name not in FIT_CORPORA:
        raise ValueError(
            f"{value!r} is not 'target' or <corpus>:<split> with corpus one of "
            f"{', '.join(FIT_CORPORA)} (e.g. stsb:train)"
        )
    allowed = FIT_CORPORA[name][1]
    if split not in allowed:
        raise ValueError(
            f"{value!r}: split must be one of {', '.join(allowed)}, e.g. {name}:{allowed[0]}"
        )
    return value


def _check_pooling(value: str) -> str:
    check_pooling_spec(value)
    return value


def _check_variant(value: str) -> str:
    parse_variant(value)
    return value


# Items are validated one by one so that an error names its position (embeddings.fit_on.1: ...).
PoolingSpec = Annotated[str, AfterValidator(_check_pooling)]
WhiteningVariant = Annotated[str, AfterValidator(_check_variant)]
FitCorpus = Annotated[str, AfterValidator(_check_fit_corpus)]


# A built-in STS task or the user's scored pairs (probe.data.sources.PairFile).
STSEntry = Annotated[
    Annotated[Literal["stsb", "sickr"], Tag("builtin")] | Annotated[PairFile, Tag("file")],
    Discriminator(lambda value: "builtin" if isinstance(value, str) else "file"),
]


class EmbeddingsSection(StrictModel):
    """Sentence embeddings (``embeddings`` stage): pooling x whitening, STS Spearman, isotropy."""

    tasks: Annotated[list[STSEntry], Field(min_length=1)] = ["stsb", "sickr"]
    splits: Annotated[list[Literal["train", "dev", "test"]], Field(min_length=1)] = [
        "train", "dev", "test"]  # fmt: skip
    poolings: list[PoolingSpec] = ["cls", "pooler", "mean", "mean_nospecial", "first_last_avg"]
    layerwise: list[Literal["cls", "mean", "mean_nospecial"]] = ["mean"]
    whitening: Annotated[list[WhiteningVariant], Field(min_length=1)] = [
        "raw", "center", "whiten", "whiten-256", "whiten-128"]  # fmt: skip
    fit_on: Annotated[list[FitCorpus], Field(min_length=1)] = ["target"]
    isotropy_top_k: list[Annotated[int, Field(gt=0)]] = [1, 10]
    isotropy_splits: list[Literal["train", "dev", "test"]] = ["test"]
    batch_tokens: Annotated[int, Field(gt=0)] = 8192
    max_length: Annotated[int, Field(gt=2)] | None = None
    limit: Annotated[int, Field(gt=1)] | None = None
    fit_limit: Annotated[int, Field(gt=1)] | None = 20000

    @property
    def task_names(self) -> list[str]:
        """The name of every STS task, built-in or from files, in order."""
        return [t if isinstance(t, str) else t.name for t in self.tasks]

    @model_validator(mode="after")
    def _unique_task_names(self) -> EmbeddingsSection:
        names = self.task_names
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tasks: names must be unique, got {twice} twice")
        return self

    @model_validator(mode="after")
    def _isotropy_splits_are_scored(self) -> EmbeddingsSection:
        unscored = [s for s in self.isotropy_splits if s not in self.splits]
        if unscored:
            raise ValueError(
                f"isotropy_splits {unscored} are not in splits {self.splits}; add them to splits"
            )
        return self
