"""Pooling spellings (``cls``, ``mean@3``, ``mean@1+6``, ...) and what they resolve to.

Torch-free, so that the study schema can check a spelling without importing the encoder code; the
vectors themselves are computed in :mod:`probe.embeddings.pooling`, whose docstring defines each
pooling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["POOLING_KINDS", "Pooling", "check_pooling_spec", "resolve_pooling"]

#: Base vectors computed per layer (``pooler`` has no layer).
POOLING_KINDS = ("cls", "pooler", "mean", "mean_nospecial")
_NAMES = (*POOLING_KINDS, "first_last_avg")
_SPEC = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<layers>[^@]+))?$")
_LAYER = re.compile(r"^(?:[0-9]+|last)$")


@dataclass(frozen=True)
class Pooling:
    """A resolved pooling: which base vector, averaged over which layers.

    Attributes
    ----------
    name : str
        The ``probe`` column of results tables: ``cls``, ``pooler``, ``mean``,
        ``mean_nospecial`` or ``first_last_avg``.
    kind : str
        The base vector: one of :data:`POOLING_KINDS`.
    layers : tuple of int
        Layers (0..L) whose base vectors are averaged; empty for ``pooler``.
    """

    name: str
    kind: str
    layers: tuple[int, ...]

    @property
    def spec(self) -> str:
        """Canonical spelling with explicit layers, e.g. ``mean@6``, ``mean@1+6``, ``pooler``."""
        if self.name in ("pooler", "first_last_avg"):
            return self.name
        return f"{self.name}@{'+'.join(map(str, self.layers))}"

    @property
    def layer(self) -> int | None:
        """The single layer this pooling reads, or None (pooler, several layers)."""
        return self.layers[0] if len(self.layers) == 1 else None

    @property
    def features(self) -> tuple[str, ...]:
        """Base vectors needed, named ``<kind>@<layer>`` or ``pooler``."""
        if self.kind == "pooler":
            return ("pooler",)
        return tuple(f"{self.kind}@{layer}" for layer in self.layers)


def _split_spec(spec: str) -> tuple[str, list[str]]:
    match = _SPEC.fullmatch(spec.strip())
    if match is None or match.group("name") not in _NAMES:
        raise ValueError(
            f"pooling {spec!r} is not one of {', '.join(_NAMES)} (optionally @<layer>[+<layer>...],"
            " e.g. mean@3 or mean@1+6)"
        )
    name, layers = match.group("name"), match.group("layers")
    tokens = [] if layers is None else layers.split("+")
    if layers is not None and name in ("pooler", "first_last_avg"):
        raise ValueError(f"pooling {spec!r}: {name} has fixed layers; write just {name!r}")
    bad = [t for t in tokens if not _LAYER.fullmatch(t)]
    if bad:
        raise ValueError(f"pooling {spec!r}: layer {bad[0]!r} is not an integer or 'last'")
    return name, tokens


def check_pooling_spec(spec: str) -> None:
    """Raise ValueError when ``spec`` is not a valid pooling spelling (layers not range-checked)."""
    _split_spec(spec)


def resolve_pooling(spec: str, n_layers: int) -> Pooling:
    """Turn a pooling spelling into a :class:`Pooling` for a model with ``n_layers`` layers.

    >>> resolve_pooling("first_last_avg", 6)
    Pooling(name='first_last_avg', kind='mean', layers=(1, 6))
    >>> resolve_pooling("cls", 6).spec
    'cls@6'
    >>> resolve_pooling("mean@0+last", 6).spec
    'mean@0+6'
    """
    name, tokens = _split_spec(spec)
    if name == "pooler":
        return Pooling("pooler", "pooler", ())
    if name == "first_last_avg":
        return Pooling("first_last_avg", "mean", (1, n_layers))
    layers = [n_layers if t == "last" else int(t) for t in tokens] or [n_layers]
    out_of_range = [layer for layer in layers if layer > n_layers]
    if out_of_range:
        raise ValueError(f"pooling {spec!r}: layer {out_of_range[0]} is outside 0..{n_layers}")
    return Pooling(name, name, tuple(dict.fromkeys(layers)))
