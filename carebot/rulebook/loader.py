"""Load ``rules/*.yaml`` into a :class:`Rulebook`, reporting every problem as ``path:line:col``.

The YAML is composed into nodes and turned into Python values here (not by PyYAML's
constructor), so that every key and value keeps the place it was written. Schema errors from
pydantic are then mapped back to those places.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from carebot.exceptions import Problem, RuleError
from carebot.rulebook.schema import Disruption, FeedbackCategory, ProductProfile, Rule, Rulebook

__all__ = [
    "DEFAULT_RULE_LIMITS",
    "LoadResult",
    "Location",
    "RuleLimits",
    "RuleSource",
    "load_rulebook",
    "load_rulebook_text",
    "load_rulebook_with_positions",
    "read_rules",
]

Key = str | int
Where = tuple[Key, ...]

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_COLLECTIONS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_SECTIONS: dict[str, type[BaseModel]] = {
    "rules": Rule,
    "products": ProductProfile,
    "disruptions": Disruption,
    "feedback": FeedbackCategory,
}
_TOP_LEVEL = (*_SECTIONS, "calendars")
_PATTERNS = {
    r"^[A-Za-z0-9_-]+$": "letters, digits, '-' and '_'",
    r"^[A-Za-z0-9_.-]+$": "letters, digits, '-', '_' and '.'",
}


class _Loader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans, so ``on: order.shipped`` keeps its key."""


# YAML 1.1 reads on/off/yes/no as booleans; a rule's ``on:`` key must stay the string "on".
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF"))


@dataclass(frozen=True)
class RuleLimits:
    """Bounds on what one rule file may cost to read (``[rules]`` in the settings).

    ``max_yaml_nodes`` counts the values built with aliases expanded: YAML aliases let a few
    hundred bytes stand for billions of values ("billion laughs"), so the file is refused as
    soon as its expansion passes the limit, before it costs the memory.
    """

    max_file_bytes: int = 1_048_576
    max_yaml_nodes: int = 100_000


DEFAULT_RULE_LIMITS = RuleLimits()


class _TooLarge(Exception):
    """Raised inside ``_Document.build`` when a file expands past ``max_yaml_nodes``."""

    def __init__(self, at: Location) -> None:
        super().__init__(str(at))
        self.at = at


@dataclass(frozen=True)
class Location:
    """A place in a merchant's file (1-based line and column)."""

    path: str
    line: int
    col: int

    def problem(self, message: str) -> Problem:
        return Problem(self.path, self.line, self.col, message)


@dataclass(frozen=True)
class RuleSource:
    """Where one rule was written: its start and the place of each value inside it."""

    start: Location
    values: Mapping[Where, Location]

    def at(self, *keys: Key) -> Location:
        """The place of the value at ``keys`` (e.g. ``at("send", "template")``), or the nearest."""
        for end in range(len(keys), 0, -1):
            found = self.values.get(keys[:end])
            if found is not None:
                return found
        return self.start


@dataclass(frozen=True)
class LoadResult:
    """What a rules folder holds: the valid part as a Rulebook, and every problem found."""

    rulebook: Rulebook
    sources: Mapping[str, RuleSource]
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class _Marks:
    key: Location | None  # None for list items and the document itself
    value: Location


class _Document:
    """The Python value of one YAML file, with the place of each key and value in it."""

    def __init__(self, path: str, *, max_nodes: int = RuleLimits.max_yaml_nodes) -> None:
        self.path = path
        self.max_nodes = max_nodes
        self.built = 0
        self.marks: dict[Where, _Marks] = {}
        self.problems: list[Problem] = []
        self.value: Any = None
        self.broken: set[Where] = set()  # values already reported; no schema error on top
        self._scalars = _Loader("")
        self._open: set[int] = set()

    def at(self, mark: yaml.Mark) -> Location:
        return Location(self.path, mark.line + 1, mark.column + 1)

    def build(self, node: yaml.Node, where: Where = (), key: Location | None = None) -> Any:
        value_at = self.at(node.start_mark)
        self.built += 1
        if self.built > self.max_nodes:
            raise _TooLarge(value_at)
        self.marks[where] = _Marks(key, value_at)
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


@dataclass
class _Entry:
    section: str
    doc: _Document
    index: int
    value: Any


def read_rules(rules_dir: Path, *, limits: RuleLimits = DEFAULT_RULE_LIMITS) -> LoadResult:
    """Load every ``*.yaml``/``*.yml`` file in ``rules_dir``; never raises, collects problems."""
    if not rules_dir.is_dir():
        return _failed(Problem(str(rules_dir), 1, 1, "rules folder not found"))
    files = sorted(
        (p for p in rules_dir.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file()),
        key=lambda p: p.name,
    )
    if not files:
        return _failed(Problem(str(rules_dir), 1, 1, "no *.yaml rule files in this folder"))
    texts: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for file in files:
        try:
            if file.stat().st_size > limits.max_file_bytes:
                limit = limits.max_file_bytes
                message = f"file is larger than {limit} bytes (rules.max_file_bytes)"
                problems.append(Problem(str(file), 1, 1, message))
                continue
            texts.append((str(file), file.read_text(encoding="utf-8-sig")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(file), 1, 1, f"cannot read file: {exc}"))
    result = _read_texts(texts, limits)
    return LoadResult(result.rulebook, result.sources, _sorted([*problems, *result.problems]))


def load_rulebook_with_positions(
    rules_dir: Path, *, limits: RuleLimits = DEFAULT_RULE_LIMITS
) -> tuple[Rulebook, dict[str, RuleSource]]:
    """Load the rules folder and where each rule was written; raise ``RuleError`` on problems."""
    result = read_rules(rules_dir, limits=limits)
    if result.problems:
        raise RuleError(list(result.problems))
    return result.rulebook, dict(result.sources)


def load_rulebook(rules_dir: Path, *, limits: RuleLimits = DEFAULT_RULE_LIMITS) -> Rulebook:
    """Load the rules folder; raise ``RuleError`` carrying every problem found."""
    return load_rulebook_with_positions(rules_dir, limits=limits)[0]


def load_rulebook_text(text: str, path: str = "<text>") -> Rulebook:
    """Load one rules file given as text (for tests and previews); raise ``RuleError``."""
    result = _read_texts([(path, text)], RuleLimits())
    if result.problems:
        raise RuleError(list(result.problems))
    return result.rulebook


def _failed(problem: Problem) -> LoadResult:
    return LoadResult(Rulebook(), {}, (problem,))


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(set(problems), key=lambda p: (p.path, p.line, p.col, p.message)))


def _read_texts(texts: list[tuple[str, str]], limits: RuleLimits) -> LoadResult:
    problems: list[Problem] = []
    entries: list[_Entry] = []
    calendars: list[str] = []
    for path, text in texts:
        doc = _compose(path, text, problems, limits)
        if doc is not None:
            entries.extend(_entries(doc, calendars))
            problems.extend(doc.problems)
    built: dict[str, list[Any]] = {name: [] for name in _SECTIONS}
    sources: dict[str, RuleSource] = {}
    first_id: dict[tuple[str, str], Location] = {}
    for entry in entries:
        model = _validate(entry, problems)
        if model is None:
            continue
        base = (entry.section, entry.index)
        if isinstance(model, Rule | Disruption | FeedbackCategory):
            id_at = entry.doc.marks[(*base, "id")].value
            first = first_id.setdefault((entry.section, model.id), id_at)
            if first is not id_at:
                problems.append(
                    id_at.problem(
                        f"{_label(entry)}: id: duplicate {_kind(entry)} id; first defined "
                        f"at {first.path}:{first.line}:{first.col}"
                    )
                )
                continue
        if isinstance(model, Rule):
            sources[model.id] = _rule_source(entry.doc, base)
        built[entry.section].append(model)
    rulebook = Rulebook(
        rules=tuple(built["rules"]),
        products=tuple(built["products"]),
        disruptions=tuple(built["disruptions"]),
        calendars=tuple(dict.fromkeys(calendars)),
        feedback=tuple(built["feedback"]),
    )
    return LoadResult(rulebook, sources, _sorted(problems))


def _rule_source(doc: _Document, base: Where) -> RuleSource:
    size = len(base)
    values = {where[size:]: m.value for where, m in doc.marks.items() if where[:size] == base}
    return RuleSource(start=values.pop((), doc.marks[base].value), values=values)


def _compose(path: str, text: str, problems: list[Problem], limits: RuleLimits) -> _Document | None:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        problems.append(Problem(path, 1, 1, "invalid YAML: nested too deeply"))
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(path, line, col, _yaml_message(exc)))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(path, 1, 1, f"invalid YAML: {exc}"))
        return None
    if node is None:  # an empty file, or only comments
        return None
    doc = _Document(path, max_nodes=limits.max_yaml_nodes)
    try:
        doc.value = doc.build(node)
    except _TooLarge as exc:
        problems.append(
            exc.at.problem(
                f"the file expands to more than {limits.max_yaml_nodes} values "
                "(aliases repeated inside aliases?); refused (rules.max_yaml_nodes)"
            )
        )
        return None
    except RecursionError:
        problems.append(Problem(path, 1, 1, "invalid YAML: nested too deeply"))
        return None
    return doc


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    message = f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return message


def _entries(doc: _Document, calendars: list[str]) -> Iterator[_Entry]:
    """The entries of one file's sections; shape problems go to ``doc.problems``."""
    root = doc.marks[()]
    value = doc.value
    if not isinstance(value, dict):
        doc.problems.append(
            root.value.problem(f"a rules file is a mapping with keys {', '.join(_TOP_LEVEL)}")
        )
        return
    for section, items in value.items():
        marks = doc.marks[(section,)]
        if section not in _TOP_LEVEL:
            at = marks.key or marks.value
            doc.problems.append(at.problem(f"unknown top-level key {section!r}{_hint(section)}"))
            continue
        if items is None:
            continue
        if not isinstance(items, list):
            doc.problems.append(
                marks.value.problem(f"{section}: should be a list (each entry starting with '- ')")
            )
            continue
        if section == "calendars":
            for i, name in enumerate(items):
                if isinstance(name, str) and name in _calendar_names():
                    calendars.append(name)
                elif isinstance(name, str):
                    doc.problems.append(
                        doc.marks[(section, i)].value.problem(
                            f"calendars: unknown calendar {name!r}"
                            f"{_hint(name, tuple(sorted(_calendar_names())))}"
                        )
                    )
                else:
                    doc.problems.append(
                        doc.marks[(section, i)].value.problem(
                            f"calendars: {name!r} should be a calendar name like cn-spring-festival"
                        )
                    )
            continue
        for i, item in enumerate(items):
            yield _Entry(section, doc, i, item)


def _calendar_names() -> frozenset[str]:
    # Imported here: the calendars module builds Disruption models from this package's schema.
    from carebot.disruptions.calendars import CALENDARS

    return CALENDARS


def _hint(name: str, choices: tuple[str, ...] = _TOP_LEVEL) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(choices)}"


def _label(entry: _Entry) -> str:
    value = entry.value if isinstance(entry.value, dict) else {}
    number = f"#{entry.index + 1}"
    if entry.section == "products":
        found = value.get("match")
        match: dict[Any, Any] = found if isinstance(found, dict) else {}
        name = match.get("sku") or (f"tag {match['tag']}" if match.get("tag") else None)
        return f"product {name!r}" if isinstance(name, str) else f"product {number}"
    kind = _kind(entry)
    ident = value.get("id")
    return f"{kind} {ident!r}" if isinstance(ident, str) else f"{kind} {number}"


def _kind(entry: _Entry) -> str:
    """What one entry of a section is called: ``rule``, ``disruption``, ``feedback category``."""
    return "feedback category" if entry.section == "feedback" else entry.section[:-1]


def _validate(entry: _Entry, problems: list[Problem]) -> BaseModel | None:
    model = _SECTIONS[entry.section]
    try:
        return model.model_validate(entry.value)
    except ValidationError as exc:
        base = (entry.section, entry.index)
        for error in exc.errors():
            where = (*base, *error["loc"])
            if not any(where[:end] in entry.doc.broken for end in range(len(where) + 1)):
                problems.append(_schema_problem(entry, model, base, error))
        return None


def _schema_problem(
    entry: _Entry, model: type[BaseModel], base: Where, error: ErrorDetails
) -> Problem:
    loc: Where = tuple(error["loc"])
    label = _label(entry)
    if error["type"] == "extra_forbidden":
        marks = _marks_near(entry.doc, (*base, *loc))
        known = _fields_at(model, loc[:-1])
        name = str(loc[-1])
        return (marks.key or marks.value).problem(
            f"{label}: {_dotted(loc)}: unknown key{_hint(name, known)}"
        )
    if error["type"] == "missing":
        marks = _marks_near(entry.doc, (*base, *loc[:-1]))
        parent = _dotted(loc[:-1])
        return marks.value.problem(
            f"{label}: {parent + ': ' if parent else ''}missing required key {loc[-1]!r}"
        )
    where = _narrow((*base, *loc), entry, error["msg"])
    field = _dotted(loc)
    return _marks_near(entry.doc, where).value.problem(
        f"{label}: {field + ': ' if field else ''}{_explain(error)}"
    )


def _narrow(where: Where, entry: _Entry, message: str) -> Where:
    """Point at the list item a message names (``on: [order.paid, order.shiped]``)."""
    value: Any = entry.value
    for key in where[2:]:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return where
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str) and repr(item) in message:
                return (*where, i)
    return where


def _marks_near(doc: _Document, where: Where) -> _Marks:
    for end in range(len(where), -1, -1):
        marks = doc.marks.get(where[:end])
        if marks is not None:
            return marks
    raise AssertionError("the document root always has marks")


def _fields_at(model: type[BaseModel], loc: Where) -> tuple[str, ...]:
    """The keys allowed at ``loc`` inside ``model`` (for did-you-mean on unknown keys)."""
    current: type[BaseModel] | None = model
    for key in loc:
        if current is None:
            return ()
        if isinstance(key, int):
            continue
        field = current.model_fields.get(key)
        current = _model_in(field.annotation) if field is not None else None
    return tuple(current.model_fields) if current is not None else ()


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _dotted(loc: Where) -> str:
    return ".".join(str(key) for key in loc if isinstance(key, str))


def _explain(error: ErrorDetails) -> str:
    """A merchant-readable reason for one pydantic error."""
    kind, message, value = error["type"], error["msg"], error.get("input")
    shown = _short(value)
    ctx = error.get("ctx") or {}
    if kind in {"value_error", "assertion_error"}:
        return message.split(", ", 1)[1] if message.startswith(("Value", "Assertion")) else message
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"should be a mapping of keys to values, not {shown}"
    if kind in {"list_type", "tuple_type"}:
        return f"should be a list, not {shown}"
    if kind == "string_type":
        return f"should be text, not {shown}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "should not be empty"
    if kind == "enum":
        return f"{shown} should be {ctx.get('expected')}"
    if kind == "string_pattern_mismatch":
        allowed = _PATTERNS.get(str(ctx.get("pattern")))
        if allowed:
            return f"{shown} may contain only {allowed}"
    if message.startswith("Input should be"):
        return f"{shown} should be{message.removeprefix('Input should be')}"
    return message[:1].lower() + message[1:]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
