"""Merchants' conditions and templates cannot reach Python internals or change data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carebot.channels.base import ChannelKind
from carebot.exceptions import ExpressionError, TemplateError
from carebot.rendering import TemplateRenderer
from carebot.rulebook.expressions import compile_condition, render_value

ESCAPES = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "x.__globals__",
    "x.__code__",
    "cycler.__init__.__globals__",
    "joiner.__init__.__globals__",
    "lipsum.__globals__['os']",
    "namespace.__init__.__globals__",
    "().__class__.__base__.__subclasses__()",
    "items.__class__",
    "order.__class__.__init__",
    "dict.mro()",
    "self._TemplateReference__context",
    "'{0.__class__}'.format(order)",
    "range.__self__",
]
LEAKS = ("<class", "module", "function", "built-in", "<bound", "subclasses")


def context() -> dict[str, Any]:
    return {"x": lambda: 1, "items": [1, 2], "order": {"id": "1001"}}


def assert_no_leak(text: str) -> None:
    assert not any(word in text for word in LEAKS), text


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("source", ESCAPES)
def test_a_condition_cannot_reach_python_internals(source: str, strict: bool) -> None:
    try:
        result = compile_condition(source, strict=strict)(context())
    except ExpressionError:
        return
    assert result is False


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("source", ESCAPES)
def test_a_computed_value_cannot_reach_python_internals(source: str, strict: bool) -> None:
    try:
        text = render_value("{{ " + source + " }}", context(), strict=strict)
    except ExpressionError:
        return
    assert_no_leak(text)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("source", ESCAPES)
def test_a_message_template_cannot_reach_python_internals(
    tmp_path: Path, source: str, strict: bool
) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "evil.sms.j2").write_text("[{{ " + source + " }}]", encoding="utf-8")
    renderer = TemplateRenderer(templates_dir=tmp_path, default_locale="en", strict=strict)
    try:
        rendered = renderer.render("evil", ChannelKind.SMS, "en", context())
    except TemplateError:
        return
    assert_no_leak(rendered.text)


def test_a_condition_cannot_mutate_a_list() -> None:
    items = [1, 2]
    with pytest.raises(ExpressionError, match="unsafe"):
        compile_condition("items.append(3)")({"items": items})
    assert items == [1, 2]


def test_a_template_cannot_mutate_the_context(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "evil.sms.j2").write_text(
        "{{ order.update({'id': 'x'}) }}{{ items.pop() }}", encoding="utf-8"
    )
    renderer = TemplateRenderer(templates_dir=tmp_path, default_locale="en")
    data = context()
    with pytest.raises(TemplateError, match="unsafe"):
        renderer.render("evil", ChannelKind.SMS, "en", data)
    assert data["order"] == {"id": "1001"}
    assert data["items"] == [1, 2]


def test_a_template_cannot_include_files_outside_the_templates_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret", encoding="utf-8")
    templates = tmp_path / "templates"
    (templates / "en").mkdir(parents=True)
    (templates / "en" / "evil.sms.j2").write_text("{% include '../secret.txt' %}", encoding="utf-8")
    renderer = TemplateRenderer(templates_dir=templates, default_locale="en")
    with pytest.raises(TemplateError) as caught:
        renderer.render("evil", ChannelKind.SMS, "en", {})
    assert "s3cret" not in str(caught.value)


def test_a_locale_cannot_climb_out_of_the_templates_folder(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "en").mkdir(parents=True)
    (templates / "en" / "shipped.sms.j2").write_text("ok", encoding="utf-8")
    (tmp_path / "shipped.sms.j2").write_text("escaped", encoding="utf-8")
    renderer = TemplateRenderer(templates_dir=templates, default_locale="en")
    assert renderer.render("shipped", ChannelKind.SMS, "..", {}).text == "ok"
    with pytest.raises(TemplateError):
        renderer.render("../shipped", ChannelKind.SMS, "en", {})
