"""Helpers for the scheduling-core tests: a migrated SQLite file, notification rows, a runtime.

Plain functions, imported by the tests that need them (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` lives there and the test folders are not packages).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.notifications import PlannedNotification
from carebot.runtime import Runtime, build_runtime
from carebot.settings import DispatchSettings, Settings
from carebot.store import schedule
from carebot.store.database import Database
from carebot.store.models import NotificationRow

__all__ = [
    "EMAIL",
    "MESSAGE_TEMPLATES",
    "PHONE",
    "RULES",
    "database_for",
    "insert",
    "make_runtime",
    "migrated_database",
    "notification",
    "planned",
    "sample_context",
]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
MESSAGE_TEMPLATES = ROOT / "message_templates"
PHONE = "+8613800138000"
EMAIL = "wang@example.com"


def migrated_database(path: Path) -> Database:
    """A real SQLite file at ``path``, migrated to head with Alembic."""
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    return db


def database_for(request: Any, tmp_path: Path) -> Database:
    """For a fixture parametrised ``sqlite``/``postgresql``: a migrated SQLite file, or the
    test's own fresh PostgreSQL database (the ``postgres_url`` fixture)."""
    if request.param == "sqlite":
        return migrated_database(tmp_path / "carebot.db")
    return Database(request.getfixturevalue("postgres_url"))


def sample_context(order_id: str = "1001") -> dict[str, Any]:
    """What the shipped templates read, as the planner would have built it."""
    return {
        "event": {"id": f"evt-{order_id}", "type": "order.shipped"},
        "order": {"id": order_id, "total": "358.00", "currency": "CNY"},
        "customer": {"id": "c-42", "name": "王芳", "phone": PHONE, "email": EMAIL},
        "shipping_address": {"country": "CN"},
        "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1234567890"},
        "shipments": [],
        "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2}],
        "shop": {"name": "测试小店"},
    }


def planned(key: str, *, due_at: datetime, **overrides: Any) -> PlannedNotification:
    """A scheduled SMS of the ``shipped`` template to a Shanghai customer, due at ``due_at``."""
    base = PlannedNotification(
        dedupe_key=key,
        rule_id="shipped",
        channel="sms",
        recipient=PHONE,
        template="shipped",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        window=None,
        due_at=due_at,
        not_after=due_at + timedelta(days=2),
        context=sample_context(),
        order_id="1001",
        customer_id="c-42",
        shipment_id="s-1",
        event_id="evt-1001",
    )
    return replace(base, **overrides)


def insert(db: Database, *items: PlannedNotification, now: datetime) -> list[int]:
    """Insert ``items`` in one transaction; the ids of their rows, in the same order."""
    with db.transaction() as session:
        schedule.insert_planned(session, list(items), now=now)
        ids = {
            key: id_
            for key, id_ in session.execute(
                select(NotificationRow.dedupe_key, NotificationRow.id).where(
                    NotificationRow.dedupe_key.in_([i.dedupe_key for i in items])
                )
            )
        }
    return [ids[i.dedupe_key] for i in items]


def notification(db: Database, notification_id: int) -> NotificationRow:
    """The stored row, read fresh in its own transaction."""
    with db.transaction() as session:
        row = session.get(NotificationRow, notification_id)
        assert row is not None, f"no notification {notification_id}"
        return row


def make_runtime(
    tmp_path: Path,
    *,
    clock: VirtualClock,
    quiet_hours: str = "none",
    dispatch: DispatchSettings | None = None,
    db: Database | None = None,
) -> tuple[Runtime, dict[ChannelKind, MemoryChannel]]:
    """The real pipeline and dispatcher on a migrated SQLite file, with capturing channels.

    Every setting that matters is passed explicitly, so neither the environment nor
    ``config/carebot.toml`` can change what a test sees.
    """
    db_path = tmp_path / "carebot.db"
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours=quiet_hours,
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
        public_url="https://care.example.com",
        shop_name="测试小店",
        dispatch=dispatch or DispatchSettings(),
    )
    db = db or migrated_database(db_path)
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, clock=clock, channels=channels, db=db, inline_db=True)
    return runtime, channels
