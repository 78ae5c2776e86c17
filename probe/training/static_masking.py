"""Static masking as BERT did it: ``dupe_factor`` copies of the data, each masked once.

Google's ``create_pretraining_data.py`` writes the training set ``dupe_factor`` times (default
10); each copy gets its own pass of the random number generator, hence its own next-sentence
pairs and its own masks, all fixed in the preprocessed files. Training then reads those files
for many epochs, so copy ``k`` of a sequence is fed with exactly the same mask every time it comes
round: BERT's 40 epochs over 10 copies showed each mask 4 times. RoBERTa's *dynamic* masking
draws a new mask every time a sequence is fed (``masking: dynamic``, this package's default).

Here the copies are not written out: the mask of copy ``k`` of chunk ``i`` is a pure function of
``(seed, k, i)`` (a generator seeded by them), which is the same as masking the copies once in
preprocessing and storing them, without the disk space. Epoch ``e`` feeds copy ``e mod
dupe_factor`` of every chunk (in that epoch's shuffled order), so after ``E`` epochs each copy has
been seen ``E / dupe_factor`` times. BERT shuffled the 10 copies together instead of taking them
in turn; the number of times each fixed mask is seen is the same, and taking them in turn keeps an
epoch a pass over the data, so epochs mean the same thing for static and dynamic jobs.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["copy_of", "example_generator"]

_STATIC_TAG = 0x57A7


def copy_of(epoch: int, dupe_factor: int) -> int:
    """Which masked copy of the data epoch ``epoch`` feeds.

    >>> [copy_of(e, 3) for e in range(7)]
    [0, 1, 2, 0, 1, 2, 0]
    """
    return epoch % dupe_factor


def example_generator(seed: int, copy: int, index: int) -> torch.Generator:
    """The generator that masks copy ``copy`` of chunk ``index``: the same one every epoch."""
    state = np.random.SeedSequence([seed % 2**63, _STATIC_TAG, copy, index])
    return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0] % 2**63))
