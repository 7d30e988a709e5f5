"""YAML parsing with bounded work: a sweep file can neither blow up nor say one key twice.

PyYAML's safe loader shares the object an alias points to, so a 500-byte file of nested aliases
(a "billion laughs" bomb) loads cheaply, but everything that walks the result afterwards, a validator
or a location index, pays for every expansion. ``BoundedLoader`` counts the nodes the document
*expands to* while it is composed (an alias counts the whole subtree it repeats) and stops at
``MAX_NODES``; it also refuses nesting deeper than ``MAX_DEPTH`` (which would otherwise end in a
RecursionError), recursive aliases, and a key written twice in one mapping (PyYAML silently keeps
the last one).
"""

from __future__ import annotations

from typing import Any

import yaml

from costbench.errors import echo

MAX_NODES = 10_000  # the shipped sweeps have under 100; a hand-written sweep file never nears this
MAX_DEPTH = 50  # the shipped sweeps nest 4 deep; Python's recursion limit would end near 300
MERGE_TAG = "tag:yaml.org,2002:merge"


class RejectedYAML(yaml.MarkedYAMLError):
    """Parseable YAML that a sweep file must not contain; ``problem`` is the whole one-line message."""


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys, recursive aliases and more than ``max_nodes`` nodes."""

    def __init__(self, stream: str, max_nodes: int = MAX_NODES) -> None:
        super().__init__(stream)
        self.max_nodes = max_nodes
        self._expanded = 0  # nodes composed so far, each alias counted as the subtree it repeats
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded size, once the node is complete
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise RejectedYAML(problem="an alias refers to the mapping or list that contains it; "
                                   "a sweep file cannot be recursive", problem_mark=mark)
            self._aliases += 1
            self._count(size, mark)
            return node
        before = self._expanded
        mark = self.peek_event().start_mark
        self._count(1, mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise RejectedYAML(problem=f"lists and mappings nest more than {MAX_DEPTH} levels deep; a sweep "
                               "file needs a handful", problem_mark=mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._expanded - before
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
                continue
            earlier = first.setdefault((key.tag, key.value), key)
            if earlier is not key:
                raise RejectedYAML(
                    problem=f"duplicate key '{echo(key.value)}' (first at line {earlier.start_mark.line + 1}); "
                            "keep one of them",
                    problem_mark=key.start_mark,
                )
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._expanded += nodes
        if self._expanded <= self.max_nodes:
            return
        if self._aliases:
            problem = (f"YAML aliases expand to more than {self.max_nodes:,} nodes; a sweep file needs far "
                       "fewer: write the values out, or use grid/include instead of nested aliases")
        else:
            problem = f"more than {self.max_nodes:,} YAML nodes; a sweep file needs far fewer: split it"
        raise RejectedYAML(problem=problem, problem_mark=mark)


def load_yaml(text: str, max_nodes: int = MAX_NODES) -> tuple[yaml.Node | None, Any]:
    """The composed node tree (for locations) and the constructed value, from one bounded parse."""
    loader = BoundedLoader(text, max_nodes)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()
