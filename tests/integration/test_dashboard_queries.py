"""The dashboard's queries give the same answers on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.core import database_for, planned

from carebot.store import dashboard, schedule
from carebot.store.database import Database
from carebot.store.models import CustomerRow, OrderRow, ShipmentRow
from carebot.web.dashboard.charts import local_days, local_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = database_for(request, tmp_path)
    due = [NOW - timedelta(hours=30), NOW - timedelta(hours=1), NOW + timedelta(hours=23)]
    with database.transaction() as session:
        schedule.insert_planned(
            session,
            [planned(f"k{n}", due_at=at, rule_id=f"r{n % 2}") for n, at in enumerate(due)],
            now=NOW - timedelta(days=2),
        )
    yield database
    database.dispose()


def test_the_overview_counts_by_local_day_and_finds_the_next_and_oldest_due(db: Database) -> None:
    days = local_days(NOW.astimezone(SHANGHAI).date(), SHANGHAI, back=6)
    with db.transaction() as session:
        data = dashboard.overview(session, now=NOW, days=days)
    assert data.queue_depth == 3
    assert data.today_by_status == {"scheduled": 1}  # 09:00 today; 23 h on is tomorrow
    assert data.week_by_status == {"scheduled": 2}
    assert data.per_day_per_rule == {"r0": [0, 0, 0, 0, 0, 1, 0], "r1": [0, 0, 0, 0, 0, 0, 1]}
    assert data.next_due == NOW + timedelta(hours=23)
    assert data.oldest_overdue == NOW - timedelta(hours=30)


def test_upcoming_puts_each_message_in_its_local_hour(db: Database) -> None:
    start = local_days(NOW.astimezone(SHANGHAI).date(), SHANGHAI)[0]
    hours = local_hours(start, 7 * 24, SHANGHAI)
    with db.transaction() as session:
        data = dashboard.upcoming(session, now=NOW, hours=hours)
    # 09:00 today and 09:00 tomorrow, Shanghai time.
    assert data.total == 2 and data.by_hour[9] == 2
    assert data.by_slot[9] == 1 and data.by_slot[24 + 9] == 1
    assert data.by_rule == {"r0": [0, 1, 0, 0, 0, 0, 0], "r1": [1, 0, 0, 0, 0, 0, 0]}


def test_parcels_in_transit_are_grouped_by_shipping_address(db: Database) -> None:
    hangzhou = {"country": "CN", "city": "杭州市"}
    stamp = {"created_at": NOW, "updated_at": NOW}
    with db.transaction() as session:
        for n, address in enumerate([hangzhou, hangzhou, {"country": "CN", "city": "上海市"}]):
            if n < 2:
                session.add(CustomerRow(id=f"c-{n}", **stamp))
                session.flush()
            session.add(
                OrderRow(id=str(n), customer_id=f"c-{n % 2}", shipping_address=address, **stamp)
            )
            session.flush()
            session.add(
                ShipmentRow(
                    id=f"s-{n}", order_id=str(n), shipped_at=NOW, status="in_transit", **stamp
                )
            )
    with db.transaction() as session:
        found = dashboard.in_transit_by_address(session, since=NOW - timedelta(days=30))
    assert sorted((a["city"], shipments, customers) for a, shipments, customers in found) == [
        ("上海市", 1, 1),
        ("杭州市", 2, 2),
    ]
