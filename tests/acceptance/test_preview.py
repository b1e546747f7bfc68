"""``carebot preview`` as a subprocess: the rendered message, its due time and why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import REPO

EVENT = REPO / "examples" / "events" / "order-shipped.json"


def _preview(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    base |= {
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
        "CAREBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'never-created.db'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "carebot", "preview", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=tmp_path,
        timeout=60,
    )


def _event(tmp_path: Path, **changes: Any) -> Path:
    data = json.loads(EVENT.read_text(encoding="utf-8"))
    data.update(changes)
    path = tmp_path / "event.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_shipped_rule_previews_its_sms_with_masked_recipient_and_due_time(
    tmp_path: Path,
) -> None:
    result = _preview(tmp_path, "shipped", "--event", str(EVENT))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sms to +86138****8000" in out
    assert "+8613800138000" not in out
    assert "due:      2026-11-20 10:00 Asia/Shanghai" in out
    assert "SF1234567890" in out and "王芳" in out
    assert not (tmp_path / "never-created.db").exists()


def test_an_evening_event_is_held_until_the_end_of_quiet_hours_and_says_so(
    tmp_path: Path,
) -> None:
    event = _event(tmp_path, occurred_at="2026-11-20T22:30:00+08:00")
    result = _preview(tmp_path, "shipped", "--event", str(event))
    assert result.returncode == 0, result.stderr
    assert "due:      2026-11-21 09:00 Asia/Shanghai" in result.stdout
    assert "held to 2026-11-21 09:00" in result.stdout


def test_an_email_preview_prints_subject_and_saves_the_html(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mail.yaml").write_text(
        "rules:\n"
        "  - id: shipped-mail\n"
        "    on: order.shipped\n"
        "    send: {channel: email, template: shipped}\n",
        encoding="utf-8",
    )
    result = _preview(
        tmp_path,
        "shipped-mail",
        "--event",
        str(EVENT),
        "--locale",
        "en",
        CAREBOT_RULES_DIR=str(rules),
    )
    assert result.returncode == 0, result.stderr
    assert "email to w***@example.com" in result.stdout
    assert "subject:" in result.stdout
    html = tmp_path / "preview-shipped-mail.html"
    assert f"saved to {html.name}" in result.stdout
    assert "SF1234567890" in html.read_text(encoding="utf-8")


def test_an_unknown_rule_exits_1_naming_the_known_rules(tmp_path: Path) -> None:
    result = _preview(tmp_path, "shiped", "--event", str(EVENT))
    assert result.returncode == 1
    assert "no rule 'shiped'" in result.stderr and "shipped" in result.stderr


def test_a_rule_on_another_event_type_exits_1_and_says_which_it_triggers_on(
    tmp_path: Path,
) -> None:
    event = _event(tmp_path, type="order.paid")
    result = _preview(tmp_path, "shipped", "--event", str(event))
    assert result.returncode == 1
    assert "does not trigger on order.paid" in result.stderr
    assert "order.shipped" in result.stderr


def test_a_false_condition_exits_1_and_says_the_when_is_false(tmp_path: Path) -> None:
    data = json.loads(EVENT.read_text(encoding="utf-8"))
    data["shipment"]["status"] = "delivered"  # nothing to tell: it has arrived
    event = tmp_path / "delivered.json"
    event.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    result = _preview(tmp_path, "shipped", "--event", str(event))
    assert result.returncode == 1
    assert "when" in result.stderr and "is false" in result.stderr


def test_broken_rules_exit_1_with_their_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    (rules / "broken.yaml").write_text("rules: [\n", encoding="utf-8")
    result = _preview(tmp_path, "shipped", "--event", str(EVENT), CAREBOT_RULES_DIR=str(rules))
    assert result.returncode == 1
    assert f"{rules / 'broken.yaml'}:2:" in result.stderr
