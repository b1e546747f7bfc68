"""A slow template fails its own message with a reason, and never stalls the event loop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from support.core import MESSAGE_TEMPLATES, RULES, insert, migrated_database, notification, planned

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.rendering import RenderLimits
from carebot.rulebook.validation import CheckOptions, validate_rules
from carebot.runtime import build_runtime
from carebot.settings import RenderSettings, Settings

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
# About 9 million loop steps: seconds of work unbounded, cut at the budget when bounded.
SLOW = "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}{{ order.id }}"


def _templates(tmp_path: Path, slow: str = SLOW) -> Path:
    templates = tmp_path / "message_templates"
    shutil.copytree(MESSAGE_TEMPLATES, templates)
    (templates / "zh-CN" / "shipped.sms.j2").write_text(slow, encoding="utf-8")
    return templates


async def test_a_render_past_its_budget_fails_the_message_while_the_loop_keeps_running(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "carebot.db"
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        rules_dir=RULES,
        templates_dir=_templates(tmp_path),
        quiet_hours="none",
        render=RenderSettings(timeout_seconds=0.3),
    )
    db = migrated_database(db_path)
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, clock=VirtualClock(NOW), channels=channels, db=db)
    [row_id] = insert(db, planned("slow", due_at=NOW), now=NOW)

    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    running = asyncio.create_task(ticker())
    await runtime.dispatcher.run_once()
    done.set()
    await running

    row = notification(db, row_id)
    assert row.status == "failed"
    assert row.reason is not None and "render took longer than 0.3 s" in row.reason
    assert channels[ChannelKind.SMS].sent == []
    assert ticks >= 10, "the event loop was blocked while the template rendered"
    db.dispose()


def test_validate_reports_a_template_past_its_budget_with_its_place(tmp_path: Path) -> None:
    # A budget no honest template comes near even on a loaded machine, and a loop far past it.
    slower = SLOW.replace("3000", "8000")
    problems = validate_rules(
        RULES,
        _templates(tmp_path, slower),
        CheckOptions(default_locale="zh-CN", render=RenderLimits(timeout_seconds=2.0)),
    )
    slow = [p for p in problems if p.path.endswith("shipped.sms.j2")]
    assert slow, problems
    assert all(p.line == 1 and "render budget exceeded" in p.message for p in slow)


def test_the_validate_command_reports_the_budget_from_its_settings(tmp_path: Path) -> None:
    env = {
        "CAREBOT_TEMPLATES_DIR": str(_templates(tmp_path)),
        "CAREBOT_RENDER__TIMEOUT_SECONDS": "0.3",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "carebot", "validate", str(RULES)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "shipped.sms.j2:1:1: render budget exceeded: render took longer than 0.3 s" in (
        result.stdout
    )
