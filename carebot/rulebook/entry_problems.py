"""Schema errors of one rules entry, as merchant-readable problems at the place written."""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from carebot.exceptions import Problem
from carebot.rulebook.schema import Disruption, FeedbackCategory, ProductProfile, Rule
from carebot.rulebook.yaml_document import Document, Marks, Where

__all__ = ["SECTIONS", "Entry", "entry_kind", "entry_label", "hint", "validate_entry"]

SECTIONS: dict[str, type[BaseModel]] = {
    "rules": Rule,
    "products": ProductProfile,
    "disruptions": Disruption,
    "feedback": FeedbackCategory,
}
_PATTERNS = {
    r"^[A-Za-z0-9_-]+$": "letters, digits, '-' and '_'",
    r"^[A-Za-z0-9_.-]+$": "letters, digits, '-', '_' and '.'",
}


@dataclass
class Entry:
    """One item of a section (``rules``, ``products``, ...) of one file, not yet validated."""

    section: str
    doc: Document
    index: int
    value: Any


def hint(name: str, choices: tuple[str, ...]) -> str:
    """``; did you mean 'x'?`` for a near miss, else the list of ``choices``."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(choices)}"


def entry_label(entry: Entry) -> str:
    """How problems name an entry: ``rule 'shipped'``, ``product 'MILK-900G'``, ``rule #3``."""
    value = entry.value if isinstance(entry.value, dict) else {}
    number = f"#{entry.index + 1}"
    if entry.section == "products":
        found = value.get("match")
        match: dict[Any, Any] = found if isinstance(found, dict) else {}
        name = match.get("sku") or (f"tag {match['tag']}" if match.get("tag") else None)
        return f"product {name!r}" if isinstance(name, str) else f"product {number}"
    kind = entry_kind(entry)
    ident = value.get("id")
    return f"{kind} {ident!r}" if isinstance(ident, str) else f"{kind} {number}"


def entry_kind(entry: Entry) -> str:
    """What one entry of a section is called: ``rule``, ``disruption``, ``feedback category``."""
    return "feedback category" if entry.section == "feedback" else entry.section[:-1]


def validate_entry(entry: Entry, problems: list[Problem]) -> BaseModel | None:
    model = SECTIONS[entry.section]
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
    entry: Entry, model: type[BaseModel], base: Where, error: ErrorDetails
) -> Problem:
    loc: Where = tuple(error["loc"])
    label = entry_label(entry)
    if error["type"] == "extra_forbidden":
        marks = _marks_near(entry.doc, (*base, *loc))
        known = _fields_at(model, loc[:-1])
        name = str(loc[-1])
        return (marks.key or marks.value).problem(
            f"{label}: {_dotted(loc)}: unknown key{hint(name, known)}"
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


def _narrow(where: Where, entry: Entry, message: str) -> Where:
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


def _marks_near(doc: Document, where: Where) -> Marks:
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
