"""One YAML file composed into Python values, keeping the place of every key and value.

PyYAML's constructor forgets where values were written; :class:`Document` builds them from the
composed nodes instead, so the loader can report problems as ``path:line:col``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from carebot.exceptions import Problem

__all__ = ["Document", "Key", "Location", "Marks", "TooLarge", "Where", "YamlLoader"]

Key = str | int
Where = tuple[Key, ...]

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTIONS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class YamlLoader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans, so ``on: order.shipped`` keeps its key."""


# YAML 1.1 reads on/off/yes/no as booleans; a rule's ``on:`` key must stay the string "on".
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF")
)


@dataclass(frozen=True)
class Location:
    """A place in a merchant's file (1-based line and column)."""

    path: str
    line: int
    col: int

    def problem(self, message: str) -> Problem:
        return Problem(self.path, self.line, self.col, message)


class TooLarge(Exception):
    """Raised inside ``Document.build`` when a file expands past ``max_yaml_nodes``."""

    def __init__(self, at: Location) -> None:
        super().__init__(str(at))
        self.at = at


@dataclass(frozen=True)
class Marks:
    """Where a value's key and the value itself were written."""

    key: Location | None  # None for list items and the document itself
    value: Location


class Document:
    """The Python value of one YAML file, with the place of each key and value in it."""

    def __init__(self, path: str, *, max_nodes: int) -> None:
        self.path = path
        self.max_nodes = max_nodes
        self.built = 0
        self.marks: dict[Where, Marks] = {}
        self.problems: list[Problem] = []
        self.value: Any = None
        self.broken: set[Where] = set()  # values already reported; no schema error on top
        self._scalars = YamlLoader("")
        self._open: set[int] = set()

    def at(self, mark: yaml.Mark) -> Location:
        return Location(self.path, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, where: Where = (), key: Location | None = None) -> Any:
        value_at = self.at(node.start_mark)
        self.built += 1
        if self.built > self.max_nodes:
            raise TooLarge(value_at)
        self.marks[where] = Marks(key, value_at)
        if id(node) in self._open:
            return self._broken(where, value_at, "an alias refers to itself")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.ScalarNode):
                return self._scalar(node, where)
            if node.tag not in _PLAIN_COLLECTIONS:
                return self._broken(where, value_at, f"unsupported YAML tag {node.tag!r}")
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*where, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self._mapping(node, where)
        finally:
            self._open.discard(id(node))

    def _broken(self, where: Where, at: Location, message: str) -> None:
        self.broken.add(where)
        self.problems.append(at.problem(message))

    def _scalar(self, node: yaml.ScalarNode, where: Where = ()) -> Any:
        try:
            return self._scalars.construct_object(node, deep=True)
        except ValueError:  # e.g. 2026-13-01 looks like a date but is none; let the schema say so
            return node.value
        except yaml.YAMLError as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            return self._broken(where, self.at(node.start_mark), f"cannot read value: {reason}")

    def _mapping(self, node: yaml.MappingNode, where: Where) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_at: dict[Any, Location] = {}
        for key_node, value_node, merged in self._pairs(node):
            key_at = self.at(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(key_at.problem("a key must be a plain name"))
                continue
            key = self._scalar(key_node)
            if key in first_at and not merged:
                first = first_at[key]
                self.problems.append(
                    key_at.problem(f"duplicate key {key!r} (first at line {first.line})")
                )
                continue
            if not merged:
                first_at[key] = key_at
            result[key] = self.build(value_node, (*where, key), key_at)
        return result

    def _pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """Key/value pairs with ``<<: *anchor`` merges first, so explicit keys override them."""
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        own: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, False))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    merged.extend((k, v, True) for k, v, _ in self._pairs(source))
                else:
                    self.problems.append(
                        self.at(source.start_mark).problem("'<<' needs a mapping to merge")
                    )
        return merged + own
