"""Sentence embeddings: pooling, BERT-whitening, STS evaluation and isotropy.

Modules (import names from them directly; this package imports no torch, so validating a study
stays cheap):

- :mod:`~probe.embeddings.config`: the ``embeddings`` study section (pure schema);
- :mod:`~probe.embeddings.pooling_spec`: pooling spellings (``mean@1+6``) and what they resolve to;
- :mod:`~probe.embeddings.pooling`: sentence vectors from an encoder;
- :mod:`~probe.embeddings.whitening`: centring and BERT-whitening;
- :mod:`~probe.embeddings.sts`: STS data and Spearman/Pearson scores;
- :mod:`~probe.embeddings.isotropy`: average cosine and variance shares;
- :mod:`~probe.embeddings.checks`, :mod:`~probe.embeddings.stage`: the stage's checks and entry.
"""

from probe.embeddings.config import EmbeddingsSection

__all__ = ["EmbeddingsSection"]
