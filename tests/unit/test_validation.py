"""``carebot validate``: every problem in rules and templates, each at its file and line."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from carebot.exceptions import Problem
from carebot.rulebook.samples import sample_context
from carebot.rulebook.validation import CheckOptions, validate_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A copy of the shipped rules and templates that a test may break."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "message_templates", tmp_path / "message_templates")
    return tmp_path


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def validate(shop: Path) -> list[Problem]:
    return validate_rules(
        shop / "rules", shop / "message_templates", CheckOptions(default_locale="zh-CN")
    )


def places(problems: list[Problem]) -> list[tuple[str, int]]:
    return [(Path(p.path).name, p.line) for p in problems]


def test_the_shipped_rules_and_templates_validate_clean() -> None:
    problems = validate_rules(
        ROOT / "rules", ROOT / "message_templates", CheckOptions(default_locale="zh-CN")
    )
    assert problems == []


def test_four_mistakes_give_exactly_four_problems_at_their_lines(shop: Path) -> None:
    write(
        shop / "rules" / "broken.yaml",
        """
        rules:
          - id: broken
            on: order.shipped
            send: {template: shipped]
        """,
    )
    write(
        shop / "rules" / "delivery.yaml",
        """
        rules:
          - id: delivered
            on: order.shiped
            send: {template: shipped}
        """,
    )
    write(
        shop / "rules" / "journeys.yaml",
        """
        # two rules that load but cannot work
        rules:
          - id: follow-up
            on: order.delivered
            send: {channel: sms, template: check_in}
          - id: tracked
            on: order.shipped
            when: shipment.tracking_number ==
            send: {channel: sms, template: shipped}
        """,
    )
    problems = validate(shop)
    assert places(problems) == [
        ("broken.yaml", 4),
        ("delivery.yaml", 3),
        ("journeys.yaml", 5),
        ("journeys.yaml", 8),
    ], problems
    syntax, typo, missing, when = problems
    assert syntax.message.startswith("invalid YAML")
    assert typo.col == 9 and "did you mean 'order.shipped'?" in typo.message
    assert missing.col == 36 and "check_in.sms.j2" in missing.message
    assert missing.message.startswith("rule 'follow-up': send.template: no sms template")
    assert when.col == 11 and when.message.startswith("rule 'tracked': when:")


def test_a_preferred_channel_needs_both_an_sms_and_an_email_template(shop: Path) -> None:
    (shop / "message_templates" / "zh-CN" / "shipped.email.j2").unlink()
    problems = validate(shop)
    assert len(problems) == 1
    assert "no email template 'shipped'" in problems[0].message
    lines = (shop / "rules" / "shipping.yaml").read_text(encoding="utf-8").splitlines()
    send_line = next(n for n, line in enumerate(lines, start=1) if "send:" in line)
    assert places(problems) == [("shipping.yaml", send_line)]


def test_an_unknown_variable_in_a_template_points_at_the_template_line(shop: Path) -> None:
    path = shop / "message_templates" / "en" / "shipped.sms.j2"
    path.write_text("Hi {{ customer.name }},\nyour parcel {{ parcel.code }}\n", encoding="utf-8")
    problems = validate(shop)
    assert [(p.path, p.line, p.col) for p in problems] == [(str(path), 2, 1)]
    assert problems[0].message == "unknown variable 'parcel'"


def test_an_email_template_without_a_text_block_is_a_problem(shop: Path) -> None:
    path = shop / "message_templates" / "en" / "shipped.email.j2"
    path.write_text("{% block subject %}Shipped{% endblock %}\n", encoding="utf-8")
    problems = validate(shop)
    assert [(p.path, p.line) for p in problems] == [(str(path), 1)]
    assert "text" in problems[0].message


def test_a_delay_template_must_render_to_a_duration(shop: Path) -> None:
    write(
        shop / "rules" / "later.yaml",
        """
        rules:
          - id: good
            on: order.delivered
            delay: "{{ items | map(attribute='follow_up_days') | max | default(3) }}d"
            send: {channel: sms, template: shipped}
          - id: bad
            on: order.delivered
            delay: "{{ items | length }} days"
            send: {channel: sms, template: shipped}
        """,
    )
    problems = validate(shop)
    assert places(problems) == [("later.yaml", 8)]
    assert problems[0].message.startswith("rule 'bad': delay:")


def test_a_condition_naming_data_the_event_lacks_is_a_problem(shop: Path) -> None:
    write(
        shop / "rules" / "replies.yaml",
        """
        rules:
          - id: happy
            on: message.received
            when: message.body.startswith('5')
            send: {channel: sms, template: shipped}
          - id: confused
            on: order.shipped
            when: message.body.startswith('5')
            send: {channel: sms, template: shipped}
        """,
    )
    problems = validate(shop)
    assert places(problems) == [("replies.yaml", 8)]


def test_the_sample_context_is_the_planner_shape_per_event() -> None:
    shipped = sample_context("order.shipped")
    assert shipped["customer"]["name"] == "王芳"
    assert shipped["shipment"]["tracking_number"] == "SF1234567890"
    assert shipped["shipments"] == [shipped["shipment"]]
    assert "message" not in shipped and "disruption" not in shipped
    assert sample_context("message.received")["message"]["channel"] == "sms"
    assert sample_context("disruption.stock_up")["disruption"]["id"] == "summit-hangzhou"
    assert sample_context("order.delivered")["shipment"]["status"] == "delivered"
    with pytest.raises(ValueError):
        sample_context("order.shiped")
