"""``carebot simulate`` as a subprocess: virtual time, the real pipeline, deterministic output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import REPO

RULES = """\
rules:
  - id: shipped
    on: order.shipped
    when: shipment.tracking_number
    send: {channel: preferred, template: shipped}
    once_per: shipment
  - id: check-in
    on: order.shipped
    delay: 3d
    window: "10:00-20:00"
    send: {channel: sms, template: shipped}
"""


def _simulate(
    tmp_path: Path, *args: str, rules_text: str = RULES
) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text(rules_text, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        (REPO / "examples" / "events" / "shipped.jsonl").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env |= {
        "CAREBOT_RULES_DIR": str(rules),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
    }
    return subprocess.run(
        [sys.executable, "-m", "carebot", "simulate", str(events), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def _records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_three_day_delay_is_sent_exactly_three_days_later_in_the_window(
    tmp_path: Path,
) -> None:
    records = _records(_simulate(tmp_path, "--json"))
    by_rule = {r["rule"]: r for r in records}
    assert set(by_rule) == {"shipped", "check-in"}
    shipped = by_rule["shipped"]
    assert shipped["status"] == "sent"
    assert shipped["sent_at"] == "2026-11-20T10:00:00+08:00"
    assert "SF1234567890" in shipped["body"]
    check_in = by_rule["check-in"]
    assert check_in["status"] == "sent"
    assert check_in["due_at"] == "2026-11-23T10:00:00+08:00"
    assert check_in["sent_at"] == "2026-11-23T10:00:00+08:00"
    assert check_in["to"] == "+8613800138000" and check_in["order_id"] == "1001"
    expected_keys = {
        "due_at", "sent_at", "rule", "channel", "to", "order_id", "status", "reason",
        "subject", "body",
    }  # fmt: skip
    assert all(set(r) == expected_keys for r in records)


def test_a_delayed_message_is_still_scheduled_when_until_is_earlier(tmp_path: Path) -> None:
    records = _records(_simulate(tmp_path, "--json", "--until", "2026-11-22T12:00:00+08:00"))
    check_in = next(r for r in records if r["rule"] == "check-in")
    assert check_in["status"] == "scheduled"
    assert check_in["sent_at"] is None
    assert check_in["due_at"] == "2026-11-23T10:00:00+08:00"


def test_the_same_file_gives_the_same_output(tmp_path: Path) -> None:
    first = _simulate(tmp_path, "--json").stdout
    second = _simulate(tmp_path, "--json").stdout
    assert first == second and first


def test_a_replay_repeats_its_email_unsubscribe_links_byte_for_byte(tmp_path: Path) -> None:
    # Outside a replay every address gets a random token; a replay must print the same file
    # twice, so its tokens come from a seeded source (its database is thrown away).
    email_rules = RULES.replace(
        "{channel: preferred, template: shipped}", "{channel: email, template: shipped}"
    )
    first = _simulate(tmp_path, "--json", rules_text=email_rules)
    second = _simulate(tmp_path, "--json", rules_text=email_rules)
    shipped = next(r for r in _records(first) if r["rule"] == "shipped")
    assert shipped["channel"] == "email" and shipped["status"] == "sent"
    assert re.search(r"/unsubscribe/[0-9a-f]{32}\b", shipped["body"]), shipped["body"]
    assert first.stdout == second.stdout


def test_the_readable_timeline_names_rule_status_and_masked_recipient(tmp_path: Path) -> None:
    result = _simulate(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "check-in" in result.stdout and "sent" in result.stdout
    assert "+86138****8000" in result.stdout
    assert "+8613800138000" not in result.stdout


def test_a_bad_event_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "type": "order.shiped", "occurred_at": "2026-11-20T10:00:00"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "carebot", "simulate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert f"{bad}:1:1:" in result.stderr and "order.shiped" in result.stderr


def test_the_readable_timeline_groups_by_order_in_local_time_with_a_masked_customer(
    tmp_path: Path,
) -> None:
    result = _simulate(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "order 1001 · customer c-42 王* · 2 notification(s)"
    assert lines[1].startswith("  2026-11-20 10:00 +08:00  sent       sms   +86138****8000")
    assert "shipped" in lines[1] and "SF1234567890" in lines[1]
    assert lines[2].startswith("  2026-11-23 10:00 +08:00  sent ")
    assert "王芳" not in lines[0]
    assert result.stderr == ""  # no progress counter when stderr is not a terminal
