"""``store._driver.run``: SQLite's hot statements on the driver, as SQLAlchemy would run them.

Each case runs the same statement through ``run`` and through ``Connection.execute`` on a real
SQLite file and compares what they store and what they return.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from support.core import migrated_database, planned, sample_context

from carebot.events import parse_event
from carebot.store import entities, schedule
from carebot.store._driver import DriverResult, run
from carebot.store.database import Database
from carebot.store.models import ConsentRow, NotificationRow

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
NOTIFICATIONS = cast(Table, NotificationRow.__table__)
SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = migrated_database(tmp_path / "carebot.db")
    yield database
    database.dispose()


def _row(key: str) -> dict[str, Any]:
    """A notification row with a value of every kind the store binds: text, JSON, instants
    (one given in +08:00), a boolean, integers and NULL."""
    return {
        "dedupe_key": key,
        "rule_id": "shipped",
        "channel": "sms",
        "recipient": "+8613800138000",
        "fallback_recipient": None,
        "template": "shipped",
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
        "window": None,
        "order_id": "1001",
        "customer_id": "c-42",
        "shipment_id": "s-1",
        "event_id": "evt-1001",
        "context": sample_context(),
        "due_at": datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=SHANGHAI),
        "not_after": NOW + timedelta(days=2),
        "status": "scheduled",
        "reason": None,
        "attempts": 2,
        "max_attempts": 6,
        "transactional": True,
        "in_doubt": "resend",
        "audience": "customer",
        "created_at": NOW,
        "updated_at": NOW,
    }


def _stored(db: Database, key: str) -> dict[str, Any]:
    """The row as SQLAlchemy reads it, without its id and key."""
    with db.engine.connect() as connection:
        row = connection.execute(
            select(NOTIFICATIONS).where(NOTIFICATIONS.c.dedupe_key == key)
        ).one()
    return {k: v for k, v in row._mapping.items() if k not in ("id", "dedupe_key")}


def test_an_insert_stores_what_sqlalchemy_stores(db: Database) -> None:
    with db.transaction() as session:
        result = run(session.connection(), insert(NOTIFICATIONS), _row("driver"))
        assert isinstance(result, DriverResult)
        session.connection().execute(insert(NOTIFICATIONS), _row("sqlalchemy"))
    stored = _stored(db, "driver")
    assert stored == _stored(db, "sqlalchemy")
    assert stored["due_at"] == datetime(2026, 11, 20, 2, 0, 0, 123456, tzinfo=UTC)
    assert stored["context"] == sample_context()
    assert stored["transactional"] is True


def test_rows_come_back_as_sqlalchemy_returns_them(db: Database) -> None:
    with db.transaction() as session:
        run(session.connection(), insert(NOTIFICATIONS), _row("k"))
    statement = select(NOTIFICATIONS).where(NOTIFICATIONS.c.dedupe_key == bindparam("key"))
    with db.transaction() as session:
        connection = session.connection()
        result = run(connection, statement, {"key": "k"})
        assert isinstance(result, DriverResult)
        ours = result.one()
        theirs = connection.execute(statement, {"key": "k"}).one()
    assert tuple(ours) == tuple(theirs)
    assert ours._mapping == dict(theirs._mapping)
    assert ours.due_at.tzinfo is UTC
    assert ours.context["customer"]["name"] == "王芳"


def test_a_column_left_out_gets_its_default(db: Database) -> None:
    row = _row("k")
    for name in ("attempts", "max_attempts", "transactional", "in_doubt"):
        del row[name]
    with db.transaction() as session:
        assert isinstance(run(session.connection(), insert(NOTIFICATIONS), row), DriverResult)
    stored = _stored(db, "k")
    assert (stored["attempts"], stored["max_attempts"]) == (0, 6)
    assert (stored["transactional"], stored["in_doubt"]) == (False, "resend")


def test_an_update_counts_its_rows_and_binds_the_values_fixed_in_it(db: Database) -> None:
    with db.transaction() as session:
        run(session.connection(), insert(NOTIFICATIONS), _row("k"))
    statement = (
        update(NOTIFICATIONS)
        .where(NOTIFICATIONS.c.dedupe_key == bindparam("key"))
        .values(status="sent", reason=None, attempts=NOTIFICATIONS.c.attempts + 1)
    )
    with db.transaction() as session:
        assert run(session.connection(), statement, {"key": "k"}).rowcount == 1
        assert run(session.connection(), statement, {"key": "missing"}).rowcount == 0
    stored = _stored(db, "k")
    assert (stored["status"], stored["reason"], stored["attempts"]) == ("sent", None, 3)


def test_many_rows_in_one_call(db: Database) -> None:
    rows = [
        {
            "channel": "sms",
            "address": f"+86138000000{n:02d}",
            "opted_out": n % 2 == 0,
            "source": "test",
            "changed_at": NOW,
        }
        for n in range(5)
    ]
    with db.transaction() as session:
        assert run(session.connection(), insert(ConsentRow), rows).rowcount == 5
    with db.engine.connect() as connection:
        stored = connection.execute(
            select(ConsentRow.address, ConsentRow.opted_out).order_by(ConsentRow.address)
        ).all()
    assert [tuple(r) for r in stored] == [(r["address"], r["opted_out"]) for r in rows]


def test_a_failed_statement_raises_sqlalchemys_error_and_its_block_keeps_nothing(
    db: Database,
) -> None:
    with pytest.raises(IntegrityError, match="UNIQUE"), db.transaction() as session:
        run(session.connection(), insert(NOTIFICATIONS), _row("first"))
        run(session.connection(), insert(NOTIFICATIONS), _row("first"))
    with db.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(NOTIFICATIONS)) == 0
    with db.transaction() as session:
        run(session.connection(), insert(NOTIFICATIONS), _row("second"))
    assert _stored(db, "second")["status"] == "scheduled"


def test_what_the_driver_cannot_run_as_sqlalchemy_does_goes_through_sqlalchemy(
    db: Database,
) -> None:
    with db.transaction() as session:
        for key in ("a", "b", "c"):
            run(session.connection(), insert(NOTIFICATIONS), _row(key))
    keys = select(NOTIFICATIONS.c.dedupe_key).order_by(NOTIFICATIONS.c.dedupe_key)
    # A list expanded into the statement at each execution.
    expanding = keys.where(NOTIFICATIONS.c.dedupe_key.in_(bindparam("keys", expanding=True)))
    with db.transaction() as session:
        result = run(session.connection(), expanding, {"keys": ["a", "c"]})
        assert not isinstance(result, DriverResult)
        assert [r.dedupe_key for r in result] == ["a", "c"]
    # A connection outside a transaction: SQLAlchemy begins one.
    with db.engine.connect() as connection:
        result = run(connection, keys, {})
        assert not isinstance(result, DriverResult)
        assert [r.dedupe_key for r in result] == ["a", "b", "c"]


def test_an_event_and_its_message_go_through_the_store_without_sqlalchemys_execution(
    db: Database,
) -> None:
    """The statements of ingest and send all run on the driver: SQLAlchemy executes none."""
    executed: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    delivered = parse_event(
        {
            "id": "evt-1-delivered",
            "type": "order.delivered",
            "occurred_at": NOW.isoformat(),
            "order": {
                "id": "1",
                "customer": {"id": "c-1", "phone": "+8613800000001", "locale": "zh-CN"},
                "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 1}],
            },
            "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1"},
        }
    )
    with db.transaction() as session:
        assert entities.record_event(session, delivered, source="carebot", received_at=NOW)
        merged = entities.merge_event(session, delivered, now=NOW)
        assert entities.facts_for(session, merged).order is not None
        schedule.insert_planned(session, [planned("k", due_at=NOW)], now=NOW)
    with db.transaction() as session:
        [claimed] = schedule.claim_due(
            session, now=NOW, worker="w", limit=10, lease=timedelta(minutes=5)
        )
        guards = schedule.guards(session, channel="sms", address=claimed.recipient, since=NOW)
        assert guards == (False, [])
        assert schedule.next_due_at(session) is None
    with db.transaction() as session:
        assert schedule.mark_sending(
            session,
            notification_id=claimed.id,
            worker="w",
            now=NOW,
            lease=timedelta(minutes=5),
            subject=None,
            body="已签收",
        )
    with db.transaction() as session:
        assert schedule.mark_sent(
            session, notification_id=claimed.id, provider_id="SM1", provider_status=None, now=NOW
        )
    assert executed == []
    assert _stored(db, "k")["status"] == "sent"
