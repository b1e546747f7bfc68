"""The rules reloader on a real SQLite file: keep the last good rules, cancel removed ones."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.core import MESSAGE_TEMPLATES, RULES, insert, migrated_database, notification, planned

from carebot.reload import RulesReloader
from carebot.rendering import TemplateRenderer
from carebot.rulebook.ruleset import RuleSet

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
EXTRA = """\
rules:
  - id: extra
    on: order.shipped
    send: {channel: sms, template: shipped}
"""


def _reloader(tmp_path: Path) -> tuple[RulesReloader, Path]:
    rules = tmp_path / "rules"
    # Only the shipped rule: the other sample files would add their own rules to the sets below.
    rules.mkdir()
    shutil.copy(RULES / "shipping.yaml", rules)
    (rules / "extra.yaml").write_text(EXTRA, encoding="utf-8")
    db = migrated_database(tmp_path / "carebot.db")
    reloader = RulesReloader(
        rules=RuleSet(rules),
        renderer=TemplateRenderer(templates_dir=MESSAGE_TEMPLATES, default_locale="zh-CN"),
        db=db,
        templates_dir=MESSAGE_TEMPLATES,
        default_locale="zh-CN",
        now=lambda: NOW,
    )
    return reloader, rules


def _touch(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    # Make the change visible even on file systems with coarse modification times.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_nothing_changed_means_nothing_reloaded(tmp_path: Path) -> None:
    reloader, _ = _reloader(tmp_path)
    assert reloader.poll().changed is False


def test_a_broken_file_keeps_the_last_good_rules_and_names_its_line(tmp_path: Path) -> None:
    reloader, rules = _reloader(tmp_path)
    _touch(rules / "extra.yaml", EXTRA.replace("on: order.shipped", "on: [order.shipped"))
    outcome = reloader.poll()
    assert outcome.changed and not outcome.applied
    assert any(p.path == str(rules / "extra.yaml") and p.line == 4 for p in outcome.problems)
    assert {r.id for r in reloader.rules().rules} == {"shipped", "extra"}


def test_removing_a_rule_cancels_its_pending_notifications_with_a_reason(tmp_path: Path) -> None:
    reloader, rules = _reloader(tmp_path)
    due = NOW + timedelta(hours=1)
    pending, sent, kept = insert(
        reloader.db,
        planned("extra-1", due_at=due, rule_id="extra"),
        planned("extra-2", due_at=due, rule_id="extra", status="sent"),
        planned("shipped-1", due_at=due),
        now=NOW,
    )
    (rules / "extra.yaml").unlink()
    outcome = reloader.poll()
    assert outcome.applied and outcome.removed_rules == ("extra",) and outcome.cancelled == 1
    assert {r.id for r in reloader.rules().rules} == {"shipped"}
    row = notification(reloader.db, pending)
    assert (row.status, row.reason) == ("cancelled", "rule 'extra' was removed")
    assert notification(reloader.db, sent).status == "sent"
    assert notification(reloader.db, kept).status == "scheduled"
