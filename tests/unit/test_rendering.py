"""Rendering message templates: locale fallback, escaping, errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from carebot.channels.base import ChannelKind
from carebot.exceptions import TemplateError
from carebot.rendering import TemplateRenderer, format_date, format_money
from carebot.rulebook.samples import sample_context

ROOT = Path(__file__).resolve().parents[2]

EMAIL = """\
{% block subject %}
  Hello
  {{ customer.name }}
{% endblock %}
{% block text %}
Hi {{ customer.name }}, from {{ locale_name }}.
{% endblock %}
{% block html %}<p>Hi {{ customer.name }}</p>{% endblock %}
"""


def make(tmp_path: Path, files: dict[str, str], *, strict: bool = False) -> TemplateRenderer:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return TemplateRenderer(templates_dir=tmp_path, default_locale="zh-CN", strict=strict)


@pytest.fixture
def renderer(tmp_path: Path) -> TemplateRenderer:
    return make(
        tmp_path,
        {
            "zh-CN/hello.sms.j2": "zh-CN",
            "en/hello.sms.j2": "en",
            "en-GB/hello.sms.j2": "en-GB",
            "zh-CN/hello.email.j2": EMAIL.replace("{{ locale_name }}", "zh-CN"),
            "en/hello.email.j2": EMAIL.replace("{{ locale_name }}", "en"),
        },
    )


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        ("en-US", "en"),
        ("en-GB", "en-GB"),
        ("en_gb", "en-GB"),
        ("en", "en"),
        ("fr", "zh-CN"),
        ("fr-FR", "zh-CN"),
        (None, "zh-CN"),
        ("zh-cn", "zh-CN"),
        ("../../etc", "zh-CN"),
    ],
)
def test_the_locale_falls_back_to_the_language_then_the_default(
    renderer: TemplateRenderer, asked: str | None, used: str
) -> None:
    rendered = renderer.render("hello", ChannelKind.SMS, asked, {})
    assert (rendered.text, rendered.locale) == (used, used)


def test_an_email_has_a_one_line_subject_a_text_and_an_html_part(
    renderer: TemplateRenderer,
) -> None:
    rendered = renderer.render("hello", ChannelKind.EMAIL, "en-US", {"customer": {"name": "Tom"}})
    assert rendered.subject == "Hello Tom"
    assert rendered.text == "Hi Tom, from en."
    assert rendered.html == "<p>Hi Tom</p>"
    assert rendered.locale == "en"


def test_html_is_escaped_but_text_subject_and_sms_are_not(tmp_path: Path) -> None:
    renderer = make(
        tmp_path,
        {"en/hi.email.j2": EMAIL.replace("{{ locale_name }}", "x"), "en/hi.sms.j2": "{{ n }}"},
    )
    name = "<b>Tom & Jerry</b>"
    email = renderer.render("hi", ChannelKind.EMAIL, "en", {"customer": {"name": name}})
    sms = renderer.render("hi", ChannelKind.SMS, "en", {"n": name})
    assert email.html == "<p>Hi &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert email.subject == f"Hello {name}"
    assert email.text == f"Hi {name}, from x."
    assert sms.text == name


def test_a_missing_template_names_every_path_tried(renderer: TemplateRenderer) -> None:
    with pytest.raises(TemplateError) as caught:
        renderer.render("nope", ChannelKind.SMS, "en-US", {})
    message = str(caught.value)
    base = renderer.templates_dir
    for locale in ("en-US", "en", "zh-CN"):
        assert str(base / locale / "nope.sms.j2") in message


def test_strict_mode_names_the_unknown_variable_file_and_line(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "Hello\n{{ customer.name }}\n{{ cusotmer }}\n"})
    renderer_strict = make(tmp_path, {}, strict=True)
    assert renderer.render("hi", ChannelKind.SMS, "en", {"customer": {"name": "A"}}).text == (
        "Hello\nA"
    )
    with pytest.raises(TemplateError) as caught:
        renderer_strict.render("hi", ChannelKind.SMS, "en", {"customer": {"name": "A"}})
    assert str(caught.value) == f"{tmp_path / 'en' / 'hi.sms.j2'}:3: unknown variable 'cusotmer'"


def test_strict_mode_names_an_unknown_field(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "{{ order.id }}\n{{ order.nmae }}"}, strict=True)
    problems = renderer.check("hi", ChannelKind.SMS, "en", {"order": {"id": "1"}})
    assert [(p.line, p.col) for p in problems] == [(2, 1)]
    assert "'nmae'" in problems[0].message


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "line one\n{% if x %}\nno end\n"})
    with pytest.raises(TemplateError, match=r"hi\.sms\.j2:\d+: .*endif"):
        renderer.render("hi", ChannelKind.SMS, "en", {})


def test_an_error_inside_an_email_block_names_its_line(tmp_path: Path) -> None:
    broken = EMAIL.replace("{{ customer.name }}</p>", "{{ 1 / 0 }}</p>")
    renderer = make(tmp_path, {"en/hi.email.j2": broken})
    problems = renderer.check("hi", ChannelKind.EMAIL, "en", {"customer": {"name": "A"}})
    assert [(p.path, p.line) for p in problems] == [(str(tmp_path / "en" / "hi.email.j2"), 8)]
    assert "ZeroDivisionError" in problems[0].message


def test_an_email_without_a_subject_block_is_an_error(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.email.j2": "{% block text %}hi{% endblock %}"})
    with pytest.raises(TemplateError, match=r"no \{% block subject %\}"):
        renderer.render("hi", ChannelKind.EMAIL, "en", {})


def test_exists_and_locales_see_the_folders(renderer: TemplateRenderer) -> None:
    assert renderer.locales() == ["en", "en-GB", "zh-CN"]
    assert renderer.exists("hello", ChannelKind.SMS, "en-GB")
    assert not renderer.exists("hello", ChannelKind.EMAIL, "en-GB")
    assert not renderer.exists("hello", ChannelKind.SMS, "fr")


def test_an_edited_template_is_picked_up_after_reload(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "one"})
    assert renderer.render("hi", ChannelKind.SMS, "en", {}).text == "one"
    (tmp_path / "en" / "hi.sms.j2").write_text("two", encoding="utf-8")
    renderer.reload()
    assert renderer.render("hi", ChannelKind.SMS, "en", {}).text == "two"


def test_the_folder_is_read_once_and_again_after_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = make(tmp_path, {"zh-CN/hi.sms.j2": "你好"})
    listings: list[list[str]] = []
    locales = renderer.locales

    def listing() -> list[str]:
        listings.append(locales())
        return listings[-1]

    monkeypatch.setattr(renderer, "locales", listing)
    for _ in range(3):
        assert renderer.render("hi", ChannelKind.SMS, "fr", {}).locale == "zh-CN"
    assert len(listings) == 1
    # Edits are not looked for at every message: the daemon's hot reload calls reload().
    make(tmp_path, {"fr/hi.sms.j2": "bonjour", "zh-CN/hi.sms.j2": "您好"})
    assert renderer.render("hi", ChannelKind.SMS, "fr", {}).text == "你好"
    assert len(listings) == 1
    renderer.reload()
    assert renderer.render("hi", ChannelKind.SMS, "fr", {}).text == "bonjour"
    assert renderer.render("hi", ChannelKind.SMS, "zh-CN", {}).text == "您好"
    (tmp_path / "fr").rename(tmp_path / "FR")
    renderer.reload()
    assert renderer.render("hi", ChannelKind.SMS, "fr", {}).locale == "FR"
    (tmp_path / "FR" / "hi.sms.j2").unlink()
    renderer.reload()
    assert renderer.render("hi", ChannelKind.SMS, "fr", {}).locale == "zh-CN"
    assert len(listings) == 4


def test_a_render_makes_no_file_system_call_once_the_template_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "hello {{ name }}"})
    assert renderer.render("hi", ChannelKind.SMS, "en-US", {"name": "a"}).text == "hello a"
    calls: list[str] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        calls.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for n in range(5):
        assert renderer.render("hi", ChannelKind.SMS, "en-US", {"name": n}).text == f"hello {n}"
    assert calls == []


def test_a_missing_optional_value_prints_as_nothing(tmp_path: Path) -> None:
    renderer = make(tmp_path, {"en/hi.sms.j2": "[{{ shipment.carrier }}]"})
    text = renderer.render("hi", ChannelKind.SMS, "en", {"shipment": {"carrier": None}}).text
    assert text == "[]"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("358.00", "CNY", "¥358.00"),
        ("12.5", "USD", "$12.50"),
        ("358", "EUR", "358.00 EUR"),
        ("1234.5", "cny", "¥1,234.50"),
        ("7", None, "7.00"),
        ("n/a", "USD", "n/a"),
    ],
)
def test_the_money_filter_formats_by_currency(
    amount: str, currency: str | None, shown: str
) -> None:
    assert format_money(amount, currency) == shown


def test_the_date_filter_formats_iso_dates_and_datetimes(tmp_path: Path) -> None:
    assert format_date("2026-11-22", "%m月%d日") == "11月22日"
    assert format_date("2026-11-20T10:00:00+08:00", "%H:%M %z") == "10:00 +0800"
    assert format_date("soon", "%Y") == "soon"
    renderer = make(tmp_path, {"en/hi.sms.j2": "{{ d | date('%d/%m/%Y') }} {{ t | money('USD') }}"})
    text = renderer.render("hi", ChannelKind.SMS, "en", {"d": "2026-11-22", "t": "3"}).text
    assert text == "22/11/2026 $3.00"


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_shipped_templates_carry_the_tracking_number(locale: str) -> None:
    renderer = TemplateRenderer(
        templates_dir=ROOT / "message_templates", default_locale="zh-CN", strict=True
    )
    context = sample_context("order.shipped", locale=locale)
    number = context["shipment"]["tracking_number"]
    sms = renderer.render("shipped", ChannelKind.SMS, locale, context)
    email = renderer.render("shipped", ChannelKind.EMAIL, locale, context)
    assert sms.locale == email.locale == locale
    assert number in sms.text
    assert context["shop"]["name"] in sms.text
    assert context["shipment"]["carrier"] in sms.text
    link = context["shipment"]["tracking_url"]
    assert link in sms.text
    # Without the link the notice is one message; the link adds one short line.
    unlinked = {**context, "shipment": {**context["shipment"], "tracking_url": None}}
    short = renderer.render("shipped", ChannelKind.SMS, locale, unlinked).text
    assert len(short) <= (70 if locale == "zh-CN" else 160)
    assert link not in short and len(sms.text) - len(short) <= len(link) + 10
    assert email.html is not None and f'href="{link}"' in email.html
    assert email.subject and "\n" not in email.subject
    assert number in email.text
    assert email.html is not None and number in email.html
    assert context["items"][0]["title"] in email.text
    assert context["unsubscribe_url"] in email.text


def test_the_shipped_chinese_sms_starts_with_the_shop_in_brackets() -> None:
    renderer = TemplateRenderer(templates_dir=ROOT / "message_templates", default_locale="zh-CN")
    sms = renderer.render("shipped", ChannelKind.SMS, "zh-CN", sample_context("order.shipped"))
    assert sms.text.startswith("【小熊母婴】")


def test_the_shipped_email_leaves_out_the_footer_without_an_unsubscribe_url() -> None:
    renderer = TemplateRenderer(
        templates_dir=ROOT / "message_templates", default_locale="zh-CN", strict=True
    )
    context = sample_context("order.shipped", locale="en")
    del context["unsubscribe_url"]
    email = renderer.render("shipped", ChannelKind.EMAIL, "en", context)
    assert "Unsubscribe" not in email.text
    assert email.html is not None and "Unsubscribe" not in email.html
