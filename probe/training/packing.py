"""RoBERTa's FULL-SENTENCES input packing, for masked-LM training without next-sentence pairs.

Liu et al. (2019, section 4.2): "Each input is packed with full sentences sampled contiguously
from one or more documents, such that the total length is at most 512 tokens. Inputs may cross
document boundaries. When we reach the end of one document, we begin sampling sentences from the
next document and add an extra separator token between documents." Here the separator is the
tokenizer's ``[SEP]`` and the length limit is the job's ``max_length`` less ``[CLS]`` and the
closing ``[SEP]``. A sentence longer than the limit is cut (its tail dropped), as BERT truncates.
The packing is fixed once (documents in corpus order), like the document chunks of
:func:`probe.training.pretrain._chunks`, so an epoch has a fixed number of inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["full_sentence_chunks"]


def full_sentence_chunks(
    docs: Sequence[Sequence[np.ndarray]], max_tokens: int, separator: int
) -> list[np.ndarray]:
    """Pack sentences contiguously across documents into inputs of at most ``max_tokens`` ids.

    Parameters
    ----------
    docs : token ids, ``[document][sentence] -> int array``.
    max_tokens : the most ids per input (without ``[CLS]`` and the final ``[SEP]``).
    separator : id put between the last sentence of a document and the first of the next, when
        both land in the same input.

    Returns
    -------
    list of int32 arrays, each of length ``<= max_tokens``.

    >>> docs = [[np.array([1, 2]), np.array([3])], [np.array([4, 5])]]
    >>> [c.tolist() for c in full_sentence_chunks(docs, 6, separator=0)]
    [[1, 2, 3, 0, 4, 5]]
    >>> [c.tolist() for c in full_sentence_chunks(docs, 4, separator=0)]
    [[1, 2, 3], [4, 5]]
    """
    chunks: list[np.ndarray] = []
    current: list[np.ndarray] = []
    length = 0
    for doc in docs:
        if current:  # a new document inside the current input: mark the boundary
            if length + 1 >= max_tokens:  # no room for the separator and a token after it
                chunks.append(np.concatenate(current))
                current, length = [], 0
            else:
                current.append(np.asarray([separator], dtype=np.int32))
                length += 1
        for sentence in doc:
            sentence = sentence[:max_tokens]
            if current and length + len(sentence) > max_tokens:
                chunks.append(np.concatenate(current))
                current, length = [], 0
            current.append(sentence.astype(np.int32))
            length += len(sentence)
    if current:
        chunks.append(np.concatenate(current))
    # an input must not start or end with the separator alone; drop empty leftovers
    return [c for c in chunks if len(c) and not (len(c) == 1 and c[0] == separator)]
