"""Study section of the similarity stage: CKA between layers and models, attention heads.

Example (``cka`` and ``attention`` are each optional; at least one is needed)::

    similarity:
      cka:
        data: ud_english_ewt:dev     # the sentence sample: ud_english_ewt:<split>, sst2:<split>
        limit: 1000                  # first N sentences (all when null)
        reference: minilm            # every other model is compared with it (default: first model)
        within: true                 # layer x layer map of every model (or a list of model names)
        baseline_draws: 3            # independent random matrices of the same shape
        batch_size: 4096             # words per minibatch
      attention:
        split: dev                   # UD English EWT split
        limit: null
        models: [minilm]             # model names (default: every model)
        batch_tokens: 4096           # padded tokens per forward pass

Word vectors for CKA come from the study's ``capture`` section (pooling, layers) and the shared
feature cache, so a probe stage on the same sentences reuses them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from probe._schema import StrictModel

__all__ = ["CKA_CORPORA", "AttentionSection", "CKASection", "SimilaritySection"]

#: Sentence samples for CKA: ``<name>:<split>`` -> (registered dataset, allowed splits).
CKA_CORPORA = {
    "ud_english_ewt": ("ud_english_ewt", ("train", "dev", "test")),
    "sst2": ("sst2_glue", ("train", "dev")),
}


def _check_sample(value: str) -> str:
    name, _, split = value.partition(":")
    if name not in CKA_CORPORA or not split:
        raise ValueError(
            f"{value!r} is not <corpus>:<split> with corpus one of {', '.join(CKA_CORPORA)} "
            "(e.g. ud_english_ewt:dev)"
        )
    allowed = CKA_CORPORA[name][1]
    if split not in allowed:
        raise ValueError(
            f"{value!r}: split must be one of {', '.join(allowed)}, e.g. {name}:{allowed[-1]}"
        )
    return value


class CKASection(StrictModel):
    """Linear CKA (biased and unbiased) between layers of a model and between models."""

    data: Annotated[str, AfterValidator(_check_sample)] = "ud_english_ewt:dev"
    limit: Annotated[int, Field(gt=3)] | None = 1000
    reference: str | None = None
    within: bool | list[str] = True
    baseline_draws: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(gt=0)] = 4096


class AttentionSection(StrictModel):
    """Attention heads on UD English EWT (Clark et al. 2019)."""

    split: Literal["train", "dev", "test"] = "dev"
    limit: Annotated[int, Field(gt=0)] | None = None
    models: list[str] | None = None
    batch_tokens: Annotated[int, Field(gt=0)] = 4096


class SimilaritySection(StrictModel):
    """The ``similarity`` stage: CKA (``cka``) and attention-head analysis (``attention``)."""

    cka: CKASection | None = None
    attention: AttentionSection | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> SimilaritySection:
        if self.cka is None and self.attention is None:
            raise ValueError("give cka: {}, attention: {} or both")
        return self
