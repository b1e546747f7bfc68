"""Load ``rules/*.yaml`` into a :class:`Rulebook`, reporting every problem as ``path:line:col``.

The YAML is composed into nodes and turned into Python values here (not by PyYAML's
constructor), so that every key and value keeps the place it was written. Schema errors from
pydantic are then mapped back to those places.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from carebot.exceptions import Problem, RuleError
from carebot.rulebook.entry_problems import (
    SECTIONS,
    Entry,
    entry_kind,
    entry_label,
    hint,
    validate_entry,
)
from carebot.rulebook.schema import Disruption, FeedbackCategory, Rule, Rulebook
from carebot.rulebook.yaml_document import Document, Key, Location, TooLarge, Where, YamlLoader

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

_TOP_LEVEL = (*SECTIONS, "calendars")


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
    entries: list[Entry] = []
    calendars: list[str] = []
    for path, text in texts:
        doc = _compose(path, text, problems, limits)
        if doc is not None:
            entries.extend(_entries(doc, calendars))
            problems.extend(doc.problems)
    built: dict[str, list[Any]] = {name: [] for name in SECTIONS}
    sources: dict[str, RuleSource] = {}
    first_id: dict[tuple[str, str], Location] = {}
    for entry in entries:
        model = validate_entry(entry, problems)
        if model is None:
            continue
        base = (entry.section, entry.index)
        if isinstance(model, Rule | Disruption | FeedbackCategory):
            id_at = entry.doc.marks[(*base, "id")].value
            first = first_id.setdefault((entry.section, model.id), id_at)
            if first is not id_at:
                problems.append(
                    id_at.problem(
                        f"{entry_label(entry)}: id: duplicate {entry_kind(entry)} id; "
                        f"first defined at {first.path}:{first.line}:{first.col}"
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


def _rule_source(doc: Document, base: Where) -> RuleSource:
    size = len(base)
    values = {where[size:]: m.value for where, m in doc.marks.items() if where[:size] == base}
    return RuleSource(start=values.pop((), doc.marks[base].value), values=values)


def _compose(path: str, text: str, problems: list[Problem], limits: RuleLimits) -> Document | None:
    try:
        node = yaml.compose(text, Loader=YamlLoader)
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
    doc = Document(path, max_nodes=limits.max_yaml_nodes)
    try:
        doc.value = doc.build(node)
    except TooLarge as exc:
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


def _entries(doc: Document, calendars: list[str]) -> Iterator[Entry]:
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
            doc.problems.append(
                at.problem(f"unknown top-level key {section!r}{hint(section, _TOP_LEVEL)}")
            )
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
                            f"{hint(name, tuple(sorted(_calendar_names())))}"
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
            yield Entry(section, doc, i, item)


def _calendar_names() -> frozenset[str]:
    # Imported here: the calendars module builds Disruption models from this package's schema.
    from carebot.disruptions.calendars import CALENDARS

    return CALENDARS
