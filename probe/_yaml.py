"""Study files are parsed with PyYAML's safe loader plus three guards a config file needs.

- **Duplicate keys** are an error naming both lines (PyYAML keeps the last one silently, so a
  study could run with a setting its author believes was overridden).
- **Expanded size and depth are capped**: aliases let a 1 kB file expand to gigabytes (a "billion
  laughs" alias bomb), and 2,000 nested brackets overflow the composer's recursion. The node graph
  is measured (shared nodes counted once per use, iteratively) before anything is constructed.
- **Echoed values are short**: :func:`short_repr` caps what an error message repeats of the
  input, so a long value still gives a one-line error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MAX_DEPTH",
    "MAX_ECHO",
    "MAX_NODES",
    "DuplicateKeyError",
    "YAMLShapeError",
    "safe_load_checked",
    "short_repr",
    "shorten",
]

# A real study has a few hundred nodes at most and nests about six levels deep.
MAX_NODES = 50_000
MAX_DEPTH = 40
MAX_ECHO = 120  # characters of a value an error message repeats
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YAMLShapeError(ValueError):
    """The document is too large or too deep once its aliases are expanded."""


def shorten(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, ``...`` marking the cut.

    >>> shorten("abcdefghij", 8)
    'abcde...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)``, cut to ``limit`` characters (without building a huge repr first).

    >>> short_repr("x" * 1000, limit=12)
    "'xxxxxxxx..."
    """
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # repr of a huge string would itself be huge
    elif isinstance(value, list | tuple | dict | set) and _too_big(value, limit):
        return f"<{type(value).__name__} too large to show>"
    return shorten(repr(value), limit)


def _too_big(value: Any, limit: int) -> bool:
    """Whether a container holds more than ``limit`` items in all (shared items counted per use)."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return False


class DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice."""


class _StudyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # The composer recurses once per level: stop at MAX_DEPTH instead of at Python's
        # recursion limit (2,000 nested brackets took 3 s to fail with a RecursionError).
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLShapeError(f"the document nests more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {short_repr(key)} (first on line {first_line[key]}); keep one",
                    key_node.start_mark,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _check_shape(root: Node) -> None:
    """Raise :class:`YAMLShapeError` when the expanded document is absurdly large or deep.

    Iterative, so neither a deep nor a wide document can overflow the stack here; each distinct
    node is visited once, its expanded size computed from its children's (memoised by identity).
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_NODES:
                raise YAMLShapeError(
                    f"the document expands to more than {MAX_NODES} values (aliases repeat their "
                    "anchor's content); write the values out"
                )
            if depth[key] > MAX_DEPTH:
                raise YAMLShapeError(f"the document nests more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in on_path:
            raise YAMLShapeError("an alias refers to its own anchor (a recursive structure)")
        if len(on_path) >= MAX_DEPTH:
            raise YAMLShapeError(f"the document nests more than {MAX_DEPTH} levels deep")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def safe_load_checked(text: str) -> Any:
    """Parse one YAML document with :class:`yaml.SafeLoader` and the guards above.

    Raises
    ------
    DuplicateKeyError
        A mapping repeats a key (a ``yaml.YAMLError`` whose mark is the second one).
    yaml.YAMLError
        Malformed YAML.
    YAMLShapeError
        Too many values once aliases are expanded, too deep, or a recursive alias.
    """
    loader = _StudyLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YAMLShapeError(f"the document nests more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        _check_shape(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
