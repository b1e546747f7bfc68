"""``carebot status`` as a subprocess against a database holding a few notifications."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.core import insert, migrated_database, planned

from carebot.notifications import NotificationStatus as S

from .conftest import REPO


def _status(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env["CAREBOT_DATABASE_URL"] = f"sqlite:///{db_path}"
    return subprocess.run(
        [sys.executable, "-m", "carebot", "status", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def _shop(tmp_path: Path) -> tuple[Path, datetime, datetime]:
    """Two overdue and one future shipped notice, a sent follow-up, two failures."""
    db_path = tmp_path / "carebot.db"
    db = migrated_database(db_path)
    now = datetime.now(UTC)
    overdue, future = now - timedelta(hours=2), now + timedelta(days=3)
    insert(
        db,
        planned("a", due_at=overdue),
        planned("b", due_at=now - timedelta(minutes=30)),
        planned("c", due_at=future),
        planned("d", due_at=overdue, rule_id="follow-up", status=S.SENT),
        planned("e", due_at=overdue, status=S.FAILED, reason="no valid phone number"),
        planned("f", due_at=overdue, status=S.FAILED, reason="no valid phone number"),
        now=now,
    )
    db.dispose()
    return db_path, overdue, future


def test_status_json_counts_by_status_and_rule_with_next_due_and_oldest_overdue(
    tmp_path: Path,
) -> None:
    db_path, overdue, future = _shop(tmp_path)
    result = _status(db_path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 6
    assert summary["by_status"] == {"scheduled": 3, "sent": 1, "failed": 2}
    assert summary["by_rule"] == {
        "shipped": {"scheduled": 3, "failed": 2},
        "follow-up": {"sent": 1},
    }
    assert datetime.fromisoformat(summary["next_due"]) == future
    assert datetime.fromisoformat(summary["oldest_overdue"]) == overdue
    assert summary["failures_by_reason"] == {"no valid phone number": 2}


def test_status_prints_a_readable_table_with_a_row_per_rule(tmp_path: Path) -> None:
    db_path, _, _ = _shop(tmp_path)
    result = _status(db_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["rule", "scheduled", "sent", "failed", "total"]
    assert lines[1].split() == ["follow-up", "0", "1", "0", "1"]
    assert lines[2].split() == ["shipped", "3", "0", "2", "5"]
    assert lines[3].split() == ["all", "3", "1", "2", "6"]
    assert any(line.startswith("next due:") and "(in 2d 23h)" in line for line in lines)
    assert any(line.startswith("oldest overdue:") and "(2h 0m late)" in line for line in lines)
    assert any(line.split() == ["2", "no", "valid", "phone", "number"] for line in lines)


def test_status_of_an_empty_database_says_there_is_nothing_yet(tmp_path: Path) -> None:
    migrated_database(tmp_path / "carebot.db").dispose()
    result = _status(tmp_path / "carebot.db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no notifications yet"
