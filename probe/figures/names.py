"""The one naming rule for figure files: a fixed prefix plus slugged parts taken from the data.

Task, model and plane names come from user files and study YAML; a name like ``../x`` or
``a/b`` must never become a path outside the figures folder. Every builder names its figures with
:func:`figure_name`, and :func:`probe.figures.export.write_figures` refuses a name that is not a
slug, so the run, ``probe export`` and the dashboard write the same file names.

>>> figure_name("layerwise", "upos")
'layerwise_upos'
>>> figure_name("mix_weights", "run · minilm/../x")
'mix_weights_run-minilm-x'
>>> is_safe_name("../etc")
False
"""

from __future__ import annotations

import re

__all__ = ["figure_name", "is_safe_name", "slug"]

_UNSAFE = re.compile(r"(?:[^A-Za-z0-9_.-]|\.{2,})+")  # ".." counts as unsafe
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def slug(text: object) -> str:
    """``text`` with each run of characters outside ``A-Za-z0-9_.-`` (or of dots) made a ``-``.

    Leading dots and dashes are dropped too, so a slug never starts a hidden file or an option.
    """
    return _UNSAFE.sub("-", str(text)).strip("-").lstrip(".-") or "x"


def figure_name(prefix: str, *parts: object) -> str:
    """``prefix_part1_part2...``, each part slugged (``prefix`` is a constant of the builder)."""
    return "_".join([prefix, *(slug(part) for part in parts)])


def is_safe_name(name: str) -> bool:
    """Whether ``name`` can be a file name inside the figures folder (no separators, no ``..``)."""
    return bool(_SAFE.fullmatch(name)) and ".." not in name
