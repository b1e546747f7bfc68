"""``Database`` on a real SQLite file under concurrent work, and seen by SQLAlchemy's events.

Transactions of one process take turns; every statement of the ingest and send paths goes
through SQLAlchemy's execution, so listeners (``echo``, tracing, slow-query logs) see them.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from support.core import make_runtime, migrated_database, planned

from carebot.clock import VirtualClock
from carebot.events import Event, parse_event
from carebot.store import consent, entities, schedule
from carebot.store.database import Database
from carebot.store.models import ConsentRow, EventRow, NotificationRow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = migrated_database(tmp_path / "carebot.db")
    yield database
    database.dispose()


def _delivered(n: int) -> Event:
    return parse_event(
        {
            "id": f"evt-{n}-delivered",
            "type": "order.delivered",
            "occurred_at": NOW.isoformat(),
            "order": {
                "id": str(n),
                "customer": {"id": f"c-{n}", "phone": f"+86138{n:08d}", "locale": "zh-CN"},
                "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
            },
            "shipment": {"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF{n}"},
        }
    )


def test_concurrent_ingests_neither_lose_nor_duplicate_events(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(NOW))
    events = [_delivered(n) for n in range(40)]

    async def ingest_all() -> list[Any]:
        # Each event twice, all at once, from worker threads as the web app does.
        calls = [runtime.db.call(runtime.pipeline.ingest, e) for e in events + events]
        return list(await asyncio.gather(*calls))

    results = asyncio.run(ingest_all())
    assert sum(1 for r in results if not r.duplicate) == len(events)
    assert sum(1 for r in results if r.duplicate) == len(events)
    with runtime.db.engine.connect() as connection:
        stored = connection.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.source == "carebot")
        )
        keys = list(connection.scalars(select(NotificationRow.dedupe_key)))
    assert stored == len(events)
    # Every event planned its delivered notice (and the follow-up) exactly once.
    assert len(keys) == len(set(keys))
    assert {k.split(":")[1] for k in keys if k.startswith("order:")} == {
        str(n) for n in range(len(events))
    }
    runtime.db.dispose()


def test_transactions_of_many_threads_take_turns_and_all_commit(db: Database) -> None:
    errors: list[BaseException] = []

    def opt_out(n: int) -> None:
        try:
            with db.transaction() as session:
                consent.set_consent(
                    session,
                    channel="sms",
                    address=f"+86138{n:08d}",
                    opted_out=True,
                    source="test",
                    now=NOW,
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=opt_out, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ConsentRow)) == 50


def test_a_call_returns_only_after_its_work_is_committed(db: Database) -> None:
    def opt_out() -> None:
        with db.transaction() as session:
            consent.set_consent(
                session,
                channel="sms",
                address="+8613800000001",
                opted_out=True,
                source="t",
                now=NOW,
            )

    asyncio.run(db.call(opt_out))
    # Read from a connection of its own: only committed work is visible there.
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ConsentRow)) == 1


def test_every_statement_of_ingest_and_send_fires_sqlalchemys_events(db: Database) -> None:
    executed: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(" ".join(statement.split()[:3]).upper())

    delivered = _delivered(1)
    with db.transaction() as session:
        assert entities.record_event(session, delivered, source="carebot", received_at=NOW)
        merged = entities.merge_event(session, delivered, now=NOW)
        assert entities.facts_for(session, merged).order is not None
        schedule.insert_planned(
            session, [planned("k1", due_at=NOW), planned("k2", due_at=NOW)], now=NOW
        )
    ingest = list(executed)
    assert ingest[0] == "BEGIN IMMEDIATE"
    assert any(s.startswith("INSERT INTO EVENTS") for s in ingest)
    assert any(s.startswith("INSERT INTO ORDERS") for s in ingest)
    assert any(s.startswith("INSERT INTO SHIPMENTS") for s in ingest)
    # The plan's two notifications go in with one statement.
    assert sum(1 for s in ingest if s.startswith("INSERT INTO NOTIFICATIONS")) == 1

    executed.clear()
    with db.transaction() as session:
        [first, _] = schedule.claim_due(
            session, now=NOW, worker="w", limit=10, lease=timedelta(minutes=5)
        )
        schedule.guards(session, channel="sms", address=first.recipient or "", since=NOW)
    with db.transaction() as session:
        assert schedule.mark_sending(
            session,
            notification_id=first.id,
            worker="w",
            now=NOW,
            lease=timedelta(minutes=5),
            subject=None,
            body="已签收",
        )
    with db.transaction() as session:
        assert schedule.mark_sent(
            session, notification_id=first.id, provider_id="SM1", provider_status=None, now=NOW
        )
    updates = [s for s in executed if s.startswith("UPDATE NOTIFICATIONS SET")]
    assert len(updates) == 3  # the claim, sending, sent
    assert sum(1 for s in executed if s.startswith("SELECT")) >= 1  # the guards
