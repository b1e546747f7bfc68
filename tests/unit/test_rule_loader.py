"""Loading merchants' rule files, and pointing at the exact place of every mistake."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from carebot.exceptions import Problem, RuleError
from carebot.rulebook.loader import (
    load_rulebook,
    load_rulebook_text,
    load_rulebook_with_positions,
    read_rules,
)
from carebot.rulebook.schema import ChannelChoice, DedupeScope

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_in(folder: Path) -> list[Problem]:
    with pytest.raises(RuleError) as caught:
        load_rulebook(folder)
    return caught.value.problems


def only_problem(folder: Path) -> Problem:
    problems = problems_in(folder)
    assert len(problems) == 1, problems
    return problems[0]


GOOD_RULE = """
rules:
  - id: shipped
    on: order.shipped
    send: {channel: sms, template: shipped}
"""


def test_the_shipped_rules_folder_loads() -> None:
    rulebook = load_rulebook(ROOT / "rules")

    shipped = rulebook.rule("shipped")
    assert shipped is not None
    assert shipped.on == ["order.shipped"]
    assert shipped.when == "shipment.status != 'delivered'"
    assert shipped.wait_for == "shipment.tracking_number"
    assert shipped.wait_timeout == timedelta(minutes=30)
    assert shipped.send.channel is ChannelChoice.PREFERRED
    assert shipped.cancel_on == ["order.cancelled", "order.refunded"]
    assert shipped.once_per is DedupeScope.SHIPMENT
    assert shipped.window is None
    assert rulebook.profile_for("MILK-900G", []) == {
        "days_per_unit": 7,
        "follow_up_days": 5,
        "restock_lead_days": 4,
    }


def test_the_on_key_stays_a_string_and_yes_no_stay_words() -> None:
    rulebook = load_rulebook_text(
        """
rules:
  - id: shipped
    on: order.shipped
    description: no
    transactional: TRUE
    send: {template: yes}
"""
    )
    rule = rulebook.rules[0]
    assert rule.on == ["order.shipped"]
    assert rule.description == "no"
    assert rule.transactional is True
    assert rule.send.template == "yes"


def test_a_yaml_syntax_error_points_at_the_offending_character(tmp_path: Path) -> None:
    write(
        tmp_path,
        "shipping.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
            send: {channel: sms, template: [shipped}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.path, problem.line, problem.col) == (str(tmp_path / "shipping.yaml"), 4, 44)
    assert problem.message.startswith("invalid YAML: ")


def test_an_unknown_event_type_is_reported_at_its_value_with_a_suggestion(tmp_path: Path) -> None:
    write(
        tmp_path,
        "shipping.yaml",
        """
        # shipping notices
        rules:
          - id: shipped
            on: order.shiped
            send: {channel: sms, template: shipped}
        """,
    )
    problem = only_problem(tmp_path)
    assert str(problem) == (
        f"{tmp_path / 'shipping.yaml'}:4:9: rule 'shipped': on: unknown event type "
        "'order.shiped'; did you mean 'order.shipped'?"
    )


def test_an_unknown_event_in_a_list_points_at_that_item(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
            cancel_on: [order.cancelled, order.refundd]
            send: {template: shipped}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (4, 34)
    assert "did you mean 'order.refunded'?" in problem.message


def test_an_unknown_key_in_a_rule_is_reported_at_the_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
            wehn: shipment.tracking_number
            send: {template: shipped}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (4, 5)
    assert problem.message == "rule 'shipped': wehn: unknown key; did you mean 'when'?"


def test_a_bad_duration_is_reported_at_its_value(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        """
        rules:
          - id: follow-up
            on: order.delivered
            send: {template: follow_up}
            window: "10:00-20:00"

            delay: "3 days"
        """,
    )
    problem = only_problem(tmp_path)
    assert str(problem) == (
        f"{tmp_path / 'x.yaml'}:7:12: rule 'follow-up': delay: duration '3 days' "
        "is not like 3d, 12h, 30m or 1d12h"
    )


def test_a_bad_window_is_reported_at_its_value(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        """
        rules:
          - id: follow-up
            on: order.delivered
            window: 10am-8pm
            send: {template: follow_up}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (4, 13)
    assert problem.message == "rule 'follow-up': window: window '10am-8pm' is not HH:MM-HH:MM"


def test_a_missing_key_is_reported_at_the_start_of_the_rule(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (2, 5)
    assert problem.message == "rule 'shipped': missing required key 'send'"


def test_a_rule_id_used_in_two_files_is_reported_at_the_second(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD_RULE)
    write(
        tmp_path,
        "b.yml",
        """
        rules:
          - on: order.shipped
            id: shipped
            send: {template: shipped}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.path, problem.line, problem.col) == (str(tmp_path / "b.yml"), 3, 9)
    assert problem.message == (
        f"rule 'shipped': id: duplicate rule id; first defined at {tmp_path / 'a.yaml'}:2:9"
    )


def test_a_duplicate_key_in_one_mapping_is_reported_at_the_second_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
            send: {template: shipped}
            on: order.delivered
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (5, 5)
    assert problem.message == "duplicate key 'on' (first at line 3)"


def test_an_unknown_top_level_key_is_reported_with_a_suggestion(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules: []
        product:
          - match: {sku: "MILK-*"}
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (2, 1)
    assert problem.message == "unknown top-level key 'product'; did you mean 'products'?"


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [\n")
    write(
        tmp_path,
        "b.yaml",
        """
        rules:
          - id: one
            on: order.shiped
            send: {template: shipped}
          - id: two
            on: order.shipped
            delay: soon
            send: {template: shipped}
        disruptions:
          - id: summit
            title: summit
            start: 2026-09-06
            end: 2026-08-24
        calendar: [cn-spring-festival]
        """,
    )
    problems = problems_in(tmp_path)
    places = [(Path(p.path).name, p.line, p.col) for p in problems]
    assert places == [
        ("a.yaml", 2, 1),
        ("b.yaml", 3, 9),
        ("b.yaml", 7, 12),
        ("b.yaml", 10, 5),
        ("b.yaml", 14, 1),
    ]


def test_a_missing_or_empty_folder_is_one_problem(tmp_path: Path) -> None:
    assert [p.message for p in problems_in(tmp_path / "nowhere")] == ["rules folder not found"]
    assert len(problems_in(tmp_path)) == 1


def test_files_are_read_in_name_order_and_calendars_merge(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "calendars: [cn-spring-festival]\n" + GOOD_RULE)
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - id: delivered
            on: order.delivered
            send: {template: delivered}
        calendars: [cn-spring-festival]
        """,
    )
    write(tmp_path, "notes.txt", "not: [yaml")
    rulebook = load_rulebook(tmp_path)
    assert [r.id for r in rulebook.rules] == ["delivered", "shipped"]
    assert rulebook.calendars == ("cn-spring-festival",)


def test_positions_of_each_rule_value_are_exposed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - id: shipped
            on: order.shipped
            when: shipment.tracking_number
            send:
              channel: sms
              template: shipped
        """,
    )
    _, sources = load_rulebook_with_positions(tmp_path)
    source = sources["shipped"]
    path = str(tmp_path / "a.yaml")
    assert (source.start.path, source.start.line, source.start.col) == (path, 2, 5)
    assert (source.at("when").line, source.at("when").col) == (4, 11)
    assert (source.at("send", "template").line, source.at("send", "template").col) == (7, 17)
    # A key the rule does not have falls back to the rule's start.
    assert source.at("delay") == source.start


def test_read_rules_keeps_the_valid_rules_beside_the_problems(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [\n")
    write(tmp_path, "b.yaml", GOOD_RULE)
    result = read_rules(tmp_path)
    assert [r.id for r in result.rulebook.rules] == ["shipped"]
    assert len(result.problems) == 1


def test_a_python_object_tag_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(
        tmp_path,
        "a.yaml",
        f"""
        rules:
          - !!python/object/apply:os.system ["touch {marker}"]
        """,
    )
    problem = only_problem(tmp_path)
    assert (problem.line, problem.col) == (2, 5)
    assert "unsupported YAML tag" in problem.message
    assert not marker.exists()
