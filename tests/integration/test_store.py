"""The store on a real SQLite file: schema, engine settings, datetimes, and event merging."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import StatementError
from support.core import make_runtime, migrated_database

from carebot.clock import VirtualClock
from carebot.events import Event, parse_event
from carebot.notifications import NotificationStatus
from carebot.runtime import Runtime
from carebot.store import entities
from carebot.store.database import Database
from carebot.store.entities import Facts
from carebot.store.models import Base, CustomerRow, EventRow, NotificationRow, OrderRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIPPED_AT = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


# --- schema and engine ---------------------------------------------------------------------------


def test_the_migrations_create_exactly_the_schema_the_models_describe(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    with db.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert differences == []


def test_the_comparison_would_notice_a_model_the_migrations_lack(tmp_path: Path) -> None:
    # Guards the test above: compare_metadata really sees the difference between the two.
    from sqlalchemy import Column, Integer, MetaData, Table

    db = migrated_database(tmp_path / "carebot.db")
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, extra)
    assert [d[0] for d in differences] == ["add_table"]


def test_sqlite_runs_in_wal_mode_with_synchronous_normal_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (connection.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) > 0
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # WAL is a property of the file: a connection that did not ask for it sees it too.
    with sqlite3.connect(tmp_path / "carebot.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_naive_datetime_is_refused_on_write_and_nothing_is_stored(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    naive = datetime(2026, 11, 20, 10, 0)
    with pytest.raises(StatementError) as raised, db.transaction() as session:
        session.add(CustomerRow(id="c-1", created_at=naive, updated_at=naive))
        session.flush()
    assert isinstance(raised.value.orig, ValueError)
    assert "naive" in str(raised.value.orig)
    with db.transaction() as session:
        assert session.get(CustomerRow, "c-1") is None


def test_stored_datetimes_come_back_timezone_aware_in_utc(tmp_path: Path) -> None:
    db = migrated_database(tmp_path / "carebot.db")
    local = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    with db.transaction() as session:
        session.add(CustomerRow(id="c-1", created_at=local, updated_at=local))
    with db.transaction() as session:
        row = session.get(CustomerRow, "c-1")
        assert row is not None
        assert row.created_at.tzinfo is UTC
        assert row.created_at == local
        assert (row.created_at.hour, row.created_at.minute) == (2, 0)


# --- events through the pipeline ----------------------------------------------------------------


def canonical(**overrides: Any) -> Event:
    """The DESIGN.md sample event (order 1001 shipped), with top-level fields replaced."""
    data: dict[str, Any] = {
        "id": "evt-1001-shipped",
        "type": "order.shipped",
        "occurred_at": SHIPPED_AT.isoformat(),
        "order": {
            "id": "1001",
            "placed_at": "2026-11-19T21:13:00+08:00",
            "total": "358.00",
            "currency": "CNY",
            "customer": {
                "id": "c-42",
                "name": "王芳",
                "phone": "+8613800138000",
                "email": "wang@example.com",
                "locale": "zh-CN",
                "timezone": "Asia/Shanghai",
            },
            "shipping_address": {"country": "CN", "city": "杭州市", "postal_code": "310000"},
            "items": [
                {"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2},
            ],
        },
        "shipment": {
            "id": "s-1",
            "carrier": "SF Express",
            "tracking_number": "SF1234567890",
            "status": "in_transit",
        },
    }
    data.update(overrides)
    return parse_event(data)


def delivered(event_id: str, at: datetime, shipment_id: str = "s-1") -> Event:
    """A partial update: only the ids and the new status."""
    return parse_event(
        {
            "id": event_id,
            "type": "shipment.updated",
            "occurred_at": at.isoformat(),
            "order": {"id": "1001"},
            "shipment": {"id": shipment_id, "status": "delivered"},
        }
    )


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(SHIPPED_AT)


@pytest.fixture
def runtime(tmp_path: Path, clock: VirtualClock) -> Runtime:
    runtime, _channels = make_runtime(tmp_path, clock=clock, quiet_hours="none")
    return runtime


def count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def known(runtime: Runtime, shipment_id: str = "s-1") -> Facts:
    with runtime.db.transaction() as session:
        return entities.load_facts(session, order_id="1001", shipment_id=shipment_id)


def test_the_same_event_ingested_twice_is_stored_and_planned_once(runtime: Runtime) -> None:
    first = runtime.pipeline.ingest(canonical())
    second = runtime.pipeline.ingest(canonical())

    assert (first.duplicate, first.scheduled) == (False, 1)
    assert (second.duplicate, second.scheduled) == (True, 0)
    assert count(runtime, EventRow) == 1
    assert count(runtime, NotificationRow) == 1


def test_the_same_event_id_from_another_source_is_a_different_event(runtime: Runtime) -> None:
    runtime.pipeline.ingest(canonical(), source="carebot")
    other = runtime.pipeline.ingest(canonical(), source="shopify")
    assert other.duplicate is False
    assert count(runtime, EventRow) == 2
    # ...but the notice for the parcel is still planned once: dedupe is per shipment.
    assert count(runtime, NotificationRow) == 1


def test_a_partial_later_event_merges_into_the_order_without_erasing_what_was_known(
    runtime: Runtime, clock: VirtualClock
) -> None:
    runtime.pipeline.ingest(canonical())
    clock.advance(timedelta(days=2))
    runtime.pipeline.ingest(delivered("evt-s-1-delivered", SHIPPED_AT + timedelta(days=2)))

    facts = known(runtime)
    assert facts.customer is not None and facts.order is not None and facts.shipment is not None
    assert facts.customer["name"] == "王芳"
    assert facts.customer["phone"] == "+8613800138000"
    assert facts.customer["timezone"] == "Asia/Shanghai"
    assert facts.order["total"] == "358.00"
    assert facts.shipping_address == {"country": "CN", "city": "杭州市", "postal_code": "310000"}
    assert [(i["sku"], i["quantity"]) for i in facts.items] == [("MILK-900G", 2)]
    assert facts.shipment["status"] == "delivered"
    assert facts.shipment["carrier"] == "SF Express"
    assert facts.shipment["tracking_number"] == "SF1234567890"


def test_a_delivered_update_arriving_before_the_shipped_event_stays_delivered(
    runtime: Runtime,
) -> None:
    delivered_at = SHIPPED_AT + timedelta(days=2)
    runtime.pipeline.ingest(delivered("evt-s-1-delivered", delivered_at))
    runtime.pipeline.ingest(canonical())  # occurred earlier, arrives later, says in_transit

    facts = known(runtime)
    assert facts.shipment is not None and facts.order is not None
    assert facts.shipment["status"] == "delivered"
    assert facts.shipment["delivered_at"] == delivered_at.astimezone(UTC).isoformat()
    assert facts.shipment["tracking_number"] == "SF1234567890"  # the late event still fills in
    assert facts.order["status"] == "delivered"


def test_an_older_status_arriving_late_does_not_overwrite_a_newer_one(runtime: Runtime) -> None:
    runtime.pipeline.ingest(canonical())
    out_for_delivery = parse_event(
        {
            "id": "evt-ofd",
            "type": "shipment.updated",
            "occurred_at": (SHIPPED_AT + timedelta(days=2)).isoformat(),
            "order": {"id": "1001"},
            "shipment": {"id": "s-1", "status": "out_for_delivery"},
        }
    )
    stale = parse_event(
        {
            "id": "evt-transit",
            "type": "shipment.updated",
            "occurred_at": (SHIPPED_AT + timedelta(days=1)).isoformat(),
            "order": {"id": "1001"},
            "shipment": {"id": "s-1", "status": "in_transit"},
        }
    )
    runtime.pipeline.ingest(out_for_delivery)
    runtime.pipeline.ingest(stale)
    facts = known(runtime)
    assert facts.shipment is not None
    assert facts.shipment["status"] == "out_for_delivery"


def test_the_only_shipment_delivered_derives_order_delivered_exactly_once(
    runtime: Runtime, clock: VirtualClock
) -> None:
    runtime.pipeline.ingest(canonical())
    clock.advance(timedelta(days=2))
    at = SHIPPED_AT + timedelta(days=2)
    runtime.pipeline.ingest(delivered("evt-s-1-delivered", at))
    runtime.pipeline.ingest(delivered("evt-s-1-delivered", at))  # the same delivery again
    runtime.pipeline.ingest(delivered("evt-s-1-delivered-again", at + timedelta(minutes=5)))

    derived = (EventRow.source == "derived", EventRow.type == "order.delivered")
    assert count(runtime, EventRow, *derived) == 1
    with runtime.db.transaction() as session:
        row = session.scalars(select(EventRow).where(*derived)).one()
        order = session.get(OrderRow, "1001")
        assert order is not None
        assert (order.status, order.delivered_at) == ("delivered", at)
    assert row.order_id == "1001"
    assert row.occurred_at == at


def test_an_order_with_an_undelivered_shipment_left_is_not_derived_delivered(
    runtime: Runtime,
) -> None:
    runtime.pipeline.ingest(canonical())
    second_parcel = canonical(
        id="evt-1001-shipped-2",
        shipment={"id": "s-2", "carrier": "SF Express", "tracking_number": "SF2"},
    )
    runtime.pipeline.ingest(second_parcel)
    runtime.pipeline.ingest(delivered("evt-s-1-delivered", SHIPPED_AT + timedelta(days=2)))
    assert count(runtime, EventRow, EventRow.source == "derived") == 0

    runtime.pipeline.ingest(delivered("evt-s-2-delivered", SHIPPED_AT + timedelta(days=3), "s-2"))
    assert count(runtime, EventRow, EventRow.source == "derived") == 1


async def test_order_cancelled_cancels_the_shipped_notice_held_for_quiet_hours(
    tmp_path: Path,
) -> None:
    late = datetime(2026, 11, 20, 23, 0, tzinfo=SHANGHAI)
    clock = VirtualClock(late)
    runtime, channels = make_runtime(tmp_path, clock=clock, quiet_hours="21:00-09:00")

    shipped = runtime.pipeline.ingest(canonical(occurred_at=late.isoformat()))
    assert shipped.earliest_due == datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI)
    with runtime.db.transaction() as session:
        pending = session.scalars(select(NotificationRow)).one()
        assert pending.status == NotificationStatus.SCHEDULED

    clock.advance(timedelta(minutes=10))
    cancelled = runtime.pipeline.ingest(
        parse_event(
            {
                "id": "evt-1001-cancelled",
                "type": "order.cancelled",
                "occurred_at": clock.now().isoformat(),
                "order": {"id": "1001"},
            }
        )
    )
    assert cancelled.cancelled == 1
    with runtime.db.transaction() as session:
        row = session.get(NotificationRow, pending.id)
        assert row is not None
        assert row.status == NotificationStatus.CANCELLED
        assert row.reason is not None and "order.cancelled" in row.reason
        assert "evt-1001-cancelled" in row.reason

    clock.set(datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI))
    report = await runtime.dispatcher.run_once()
    assert report.claimed == 0
    assert all(channel.sent == [] for channel in channels.values())


def test_a_new_database_has_pending_migrations_until_upgraded(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert db.pending_migrations()
    db.upgrade()
    assert not db.pending_migrations()
