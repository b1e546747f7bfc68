"""``docs/rules.md`` documents exactly the keys the rule schema accepts, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from carebot.rulebook.schema import (
    AliyunTemplate,
    Disruption,
    FeedbackCategory,
    ProductMatch,
    ProductProfile,
    Region,
    Rule,
    SendSpec,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
_ROW_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|")

SECTIONS: dict[str, type[BaseModel]] = {
    "Rule keys": Rule,
    "send": SendSpec,
    "aliyun": AliyunTemplate,
    "Product keys": ProductProfile,
    "match": ProductMatch,
    "Disruption keys": Disruption,
    "regions": Region,
    "Feedback keys": FeedbackCategory,
}


def documented_keys(heading: str) -> set[str]:
    """The first-column keys of the table under ``### heading``, up to the next heading."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"### {heading}")
    keys: set[str] = set()
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if found := _ROW_KEY.match(line):
            keys.add(found.group(1))
    return keys


@pytest.mark.parametrize(("heading", "model"), SECTIONS.items(), ids=list(SECTIONS))
def test_every_schema_field_is_documented_and_nothing_else(
    heading: str, model: type[BaseModel]
) -> None:
    fields = {info.alias or name for name, info in model.model_fields.items()}
    documented = documented_keys(heading)
    assert fields - documented == set(), f"undocumented in docs/rules.md ### {heading}"
    assert documented - fields == set(), f"documented but not in {model.__name__}"


def test_every_event_type_a_rule_may_name_is_listed() -> None:
    from carebot.events import EVENT_TYPES

    text = DOC.read_text(encoding="utf-8")
    assert [t for t in sorted(EVENT_TYPES) if f"`{t}`" not in text] == []
