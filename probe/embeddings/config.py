"""Study section of the embeddings stage: poolings x whitening variants, scored on STS.

Example (every key optional; these are the defaults)::

    embeddings:
      tasks: [stsb, sickr]                 # STS Benchmark, SICK relatedness
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from probe._schema import StrictModel

if TYPE_CHECKING:
    from probe.study import Study

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
    from probe.embeddings.pooling import check_pooling_spec

    check_pooling_spec(value)
    return value


def _check_variant(value: str) -> str:
    from probe.embeddings.whitening import parse_variant

    parse_variant(value)
    return value


# Items are validated one by one so that an error names its position (embeddings.fit_on.1: ...).
PoolingSpec = Annotated[str, AfterValidator(_check_pooling)]
WhiteningVariant = Annotated[str, AfterValidator(_check_variant)]
FitCorpus = Annotated[str, AfterValidator(_check_fit_corpus)]


class EmbeddingsSection(StrictModel):
    """Sentence embeddings (``embeddings`` stage): pooling x whitening, STS Spearman, isotropy."""

    tasks: Annotated[list[Literal["stsb", "sickr"]], Field(min_length=1)] = ["stsb", "sickr"]
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

    @model_validator(mode="after")
    def _isotropy_splits_are_scored(self) -> EmbeddingsSection:
        unscored = [s for s in self.isotropy_splits if s not in self.splits]
        if unscored:
            raise ValueError(
                f"isotropy_splits {unscored} are not in splits {self.splits}; add them to splits"
            )
        return self

    def check(self, study: Study) -> None:
        """Before any model loads: layers and ``whiten-k`` fit every model, data files exist."""
        from probe.data import dataset_file
        from probe.embeddings.pooling import resolve_pooling
        from probe.embeddings.sts import STS_TASKS
        from probe.embeddings.whitening import parse_variant
        from probe.errors import StudyError
        from probe.models import load_config, resolve_model

        for entry in study.models:
            if "trained:" in entry.spec:
                continue  # produced by this run's train stage; checked when it is loaded
            config = load_config(resolve_model(entry.spec))
            n_layers, d_model = int(config.num_hidden_layers), int(config.hidden_size)
            for spec in self.poolings:
                try:
                    resolve_pooling(spec, n_layers)
                except ValueError as exc:
                    raise StudyError(f"embeddings.poolings: {exc} (model {entry.label})") from None
            for name in self.whitening:
                _, k = parse_variant(name)
                if k is not None and k > d_model:
                    raise StudyError(
                        f"embeddings.whitening: {name!r} keeps {k} dimensions but model "
                        f"{entry.label} has {d_model}; use whiten-<k> with k <= {d_model}"
                    )
        needed = {(STS_TASKS[t], s) for t in self.tasks for s in self.splits}
        if "target" in self.fit_on:
            needed |= {(STS_TASKS[t], s) for t in self.tasks for s in ("train", "dev", "test")}
        for corpus in self.fit_on:
            if corpus != "target":
                name, _, split = corpus.partition(":")
                needed.add((FIT_CORPORA[name][0], split))
        for dataset, split in sorted(needed):
            dataset_file(dataset, split)  # raises DataError naming the fix
