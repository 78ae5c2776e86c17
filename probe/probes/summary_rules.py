"""When a layer summary means something: rules shared by the probe stage's report and the figures.

Torch-free (the figures and the dashboard read it); the summaries themselves are computed in
:mod:`probe.probes.summaries`.
"""

from __future__ import annotations

__all__ = ["MIN_COG_GAIN_POINTS", "center_of_gravity_is_meaningful"]


# Below this total gain from mixing in layers 1..L (in accuracy points) the center of gravity is a
# ratio of noise to a near-zero sum (a random-init model whose layers add nothing): it can land
# anywhere, even outside 0..L. Tables show such values in parentheses and figures leave them out.
MIN_COG_GAIN_POINTS = 1.0


def center_of_gravity_is_meaningful(total_gain):
    """Whether mixing in layers 1..L gains at least ``MIN_COG_GAIN_POINTS`` accuracy points.

    ``total_gain`` is ``score(mix-L) - score(mix-0)`` (= the sum of the deltas) as a fraction;
    scalar or array-like (pandas objects keep their index).
    """
    return 100 * total_gain >= MIN_COG_GAIN_POINTS
