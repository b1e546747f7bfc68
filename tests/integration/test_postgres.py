"""The same store, pipeline and dispatcher on a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.notifications import PlannedNotification
from carebot.runtime import build_runtime
from carebot.settings import Settings
from carebot.store import schedule
from carebot.store.database import Database
from carebot.store.models import Base, EventRow, NotificationRow

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)

pytestmark = pytest.mark.postgres


def _planned(n: int, due: datetime) -> PlannedNotification:
    return PlannedNotification(
        dedupe_key=f"order:{n}:shipped:sms",
        rule_id="shipped",
        channel="sms",
        recipient=f"+861380013{n:04d}",
        template="shipped",
        locale="zh-CN",
        timezone="Asia/Shanghai",
        window=None,
        due_at=due,
        not_after=due + timedelta(days=2),
        context={"order": {"id": str(n)}},
        order_id=str(n),
    )


def test_the_migrations_build_exactly_the_models_on_postgresql(postgres_url: str) -> None:
    db = Database(postgres_url)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        where = connection.execute(
            text("select indexdef from pg_indexes where indexname = 'ix_notifications_due_pending'")
        ).scalar_one()
    assert "WHERE" in where and "scheduled" in where
    db.dispose()


def test_concurrent_claims_with_skip_locked_never_take_a_row_twice(postgres_url: str) -> None:
    db = Database(postgres_url, pool_size=8)
    with db.transaction() as session:
        schedule.insert_planned(session, [_planned(n, NOW) for n in range(300)], now=NOW)
    taken: list[list[int]] = [[] for _ in range(6)]

    def worker(index: int) -> None:
        while True:
            with db.transaction() as session:
                rows = schedule.claim_due(
                    session, now=NOW, worker=f"w{index}", limit=7, lease=timedelta(minutes=1)
                )
            if not rows:
                return
            taken[index].extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    every = [row_id for rows in taken for row_id in rows]
    assert len(every) == 300 and len(set(every)) == 300
    assert sum(1 for rows in taken if rows) > 1, "one worker took everything: no concurrency"
    db.dispose()


def test_a_claim_skips_rows_another_daemon_holds_instead_of_waiting(postgres_url: str) -> None:
    """Two daemons claim at once: the second takes the other rows at once, never waits.

    Without SKIP LOCKED the second claim would block on the first one's row locks until that
    transaction ends; with a lock timeout that is an error here instead of a hang.
    """
    db = Database(postgres_url)
    with db.transaction() as session:
        schedule.insert_planned(session, [_planned(n, NOW) for n in range(20)], now=NOW)
    lease = timedelta(minutes=1)
    with db.transaction() as first:
        held = schedule.claim_due(first, now=NOW, worker="a", limit=10, lease=lease)
        with db.transaction() as second:
            second.execute(text("SET LOCAL lock_timeout = '3s'"))
            other = schedule.claim_due(second, now=NOW, worker="b", limit=20, lease=lease)
    assert len(held) == 10 and len(other) == 10
    assert {row.id for row in held}.isdisjoint({row.id for row in other})
    db.dispose()


async def test_an_event_is_stored_once_and_its_message_sent_once_on_postgresql(
    postgres_url: str,
) -> None:
    settings = Settings(
        database_url=postgres_url,
        rules_dir=REPO / "rules",
        templates_dir=REPO / "message_templates",
        quiet_hours="none",
    )
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(settings, clock=VirtualClock(NOW), channels=channels)
    event = parse_event(
        {
            "id": "evt-1",
            "type": "order.shipped",
            "occurred_at": NOW.isoformat(),
            "order": {"id": "1001", "customer": {"id": "c-1", "phone": "+8613800138000"}},
            "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1"},
        }
    )
    assert not runtime.pipeline.ingest(event).duplicate
    assert runtime.pipeline.ingest(event).duplicate
    await runtime.dispatcher.run_once()
    await runtime.dispatcher.run_once()
    assert [m.to for m in channels[ChannelKind.SMS].sent] == ["+8613800138000"]
    with runtime.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(EventRow)) == 1
        row = session.scalars(select(NotificationRow)).one()
    assert row.status == "sent" and row.sent_at is not None and row.sent_at.tzinfo is not None
    await runtime.aclose()


def test_the_reaper_and_the_outage_record_work_on_postgresql(postgres_url: str) -> None:
    from carebot.notifications import NotificationStatus as S
    from carebot.store import provider_health

    db = Database(postgres_url)
    old = NOW - timedelta(minutes=10)
    late = _planned(1, NOW - timedelta(hours=1))
    late = PlannedNotification(**{**late.__dict__, "not_after": NOW - timedelta(minutes=1)})
    poison = PlannedNotification(
        **{**_planned(2, NOW - timedelta(hours=1)).__dict__, "max_attempts": 1}
    )
    resend = _planned(3, NOW - timedelta(hours=1))
    with db.transaction() as session:
        schedule.insert_planned(session, [late, poison, resend], now=old)
    with db.transaction() as session:
        rows = schedule.claim_due(
            session, now=old, worker="dead", limit=10, lease=timedelta(minutes=1)
        )
    ids = {row.dedupe_key: row.id for row in rows}
    for key in (poison.dedupe_key, resend.dedupe_key):
        with db.transaction() as session:
            assert schedule.mark_sending(
                session,
                notification_id=ids[key],
                worker="dead",
                now=old,
                lease=timedelta(minutes=2),
                subject=None,
                body="x",
            )
    with db.transaction() as session:
        report = schedule.reap_expired_leases(session, now=NOW)
    assert report == schedule.ReapReport(released=0, resent=1, unknown=0, expired=1, failed=1)
    with db.transaction() as session:
        statuses = dict(
            session.execute(select(NotificationRow.dedupe_key, NotificationRow.status)).all()
        )
        assert statuses == {
            late.dedupe_key: S.EXPIRED,
            poison.dedupe_key: S.FAILED,
            resend.dedupe_key: S.SCHEDULED,
        }
        for when in (NOW, NOW + timedelta(minutes=5)):  # a second sender: the first since stays
            provider_health.record_circuit(
                session, channel="sms", provider="twilio", failing=True, last_error="503", now=when
            )
    with db.transaction() as session:
        [outage] = provider_health.outages(session, now=NOW)
        assert (outage.since, outage.waiting) == (NOW, 1)
        provider_health.record_circuit(
            session, channel="sms", provider="twilio", failing=False, last_error=None, now=NOW
        )
    with db.transaction() as session:
        assert provider_health.outages(session, now=NOW) == []
    db.dispose()
