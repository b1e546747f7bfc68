"""The stalled and late shipment watchers on virtual time, against a real SQLite file."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from support.core import migrated_database

from carebot.clock import VirtualClock
from carebot.events import Event, EventType, parse_event
from carebot.pipeline import Pipeline
from carebot.planning import Planner, PlanningPolicy
from carebot.rulebook.schema import Rulebook
from carebot.store.database import Database
from carebot.watchers import LateShipments, StalledShipments, Watcher

SHANGHAI = ZoneInfo("Asia/Shanghai")
LA = ZoneInfo("America/Los_Angeles")
START = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)


class Store:
    """The real pipeline (no rules: these tests watch the derived events, not messages)."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = VirtualClock(START)
        self.db: Database = migrated_database(tmp_path / "carebot.db")
        self.pipeline = Pipeline(
            db=self.db,
            planner=Planner(policy=PlanningPolicy()),
            rulebook=Rulebook,
            clock=self.clock,
        )

    def send(self, when: datetime, **fields: Any) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        event = parse_event(
            {
                "id": f"evt-{len(fields)}-{when.isoformat()}",
                **fields,
                "occurred_at": when.isoformat(),
            }
        )
        self.pipeline.ingest(event)

    def ship(
        self,
        when: datetime,
        *,
        order: str = "1001",
        timezone: str = "Asia/Shanghai",
        carrier: str = "SF Express",
        expected: str | None = None,
    ) -> None:
        shipment: dict[str, Any] = {
            "id": f"s-{order}",
            "carrier": carrier,
            "tracking_number": f"T{order}",
        }
        if expected:
            shipment["expected_delivery"] = expected
        self.send(
            when,
            type="order.shipped",
            order={"id": order, "customer": {"id": f"c-{order}", "timezone": timezone}},
            shipment=shipment,
        )

    def scan_update(self, when: datetime, status: str, *, order: str = "1001") -> None:
        self.pipeline.ingest(
            parse_event(
                {
                    "id": f"scan-{order}-{when.isoformat()}",
                    "type": "shipment.updated",
                    "occurred_at": when.isoformat(),
                    "shipment": {"id": f"s-{order}", "status": status},
                }
            )
        )

    def run(self, watcher: Watcher, until: datetime) -> list[Event]:
        """Scan at every interval up to ``until``, ingesting what is found, as the daemon does."""
        found: list[Event] = []
        tick = START + watcher.interval
        while tick <= until:
            if tick > self.clock.now():
                self.clock.set(tick)
            for event in watcher.scan(now=tick):
                if not self.pipeline.ingest(event, source=watcher.source).duplicate:
                    found.append(event)
            tick += watcher.interval
        return found


def test_a_parcel_never_scanned_stalls_48_hours_after_it_shipped_and_fires_once(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    store.ship(START)
    found = store.run(StalledShipments(db=store.db), START + timedelta(days=5))
    assert [(e.type, e.id, e.occurred_at) for e in found] == [
        (EventType.SHIPMENT_STALLED, "stalled:s-1001", START + timedelta(hours=48))
    ]


def test_a_scan_just_before_the_threshold_restarts_the_clock(tmp_path: Path) -> None:
    store = Store(tmp_path)
    watcher = StalledShipments(db=store.db)
    store.ship(START)
    almost = START + timedelta(hours=47, minutes=59)
    store.clock.set(almost)
    store.scan_update(almost, "in_transit")
    assert watcher.scan(now=START + timedelta(hours=48)) == []
    assert watcher.scan(now=almost + timedelta(hours=48) - timedelta(seconds=1)) == []
    [stalled] = watcher.scan(now=almost + timedelta(hours=48))
    assert stalled.occurred_at == almost + timedelta(hours=48)


def test_a_carrier_with_its_own_stall_time_stalls_sooner(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ship(START, order="1001", carrier="SF Express")
    store.ship(START, order="1002", carrier="YTO")
    watcher = StalledShipments(db=store.db, carrier_stall_after={"sf-express": timedelta(hours=24)})
    found = watcher.scan(now=START + timedelta(hours=30))
    assert [e.shipment.id for e in found if e.shipment] == ["s-1001"]


def test_a_delivered_or_cancelled_parcel_never_stalls(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ship(START, order="1001")
    store.ship(START, order="1002")
    store.scan_update(START + timedelta(hours=1), "delivered", order="1001")
    store.send(START + timedelta(hours=2), type="order.cancelled", order={"id": "1002"})
    assert StalledShipments(db=store.db).scan(now=START + timedelta(days=10)) == []


def test_a_voided_expired_or_untracked_parcel_never_stalls(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for minute, order in enumerate(("1001", "1002", "1003", "1004")):
        store.ship(START + timedelta(minutes=minute), order=order)  # (event ids by time)
    store.scan_update(START + timedelta(hours=1), "cancelled", order="1001")
    store.scan_update(START + timedelta(hours=1), "expired", order="1002")
    # Shipped without tracking number (a WooCommerce shop without tracking plugin).
    store.send(
        START + timedelta(minutes=5),
        type="order.shipped",
        order={"id": "1005", "customer": {"id": "c-1005"}},
        shipment={"id": "s-1005"},
    )
    found = StalledShipments(db=store.db).scan(now=START + timedelta(days=10))
    assert sorted(e.shipment.id for e in found if e.shipment) == ["s-1003", "s-1004"]


def test_late_is_the_end_of_the_expected_day_in_the_customers_zone_not_the_servers(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    store.ship(START, order="1001", timezone="America/Los_Angeles", expected="2026-11-22")
    watcher = LateShipments(db=store.db)
    end_of_day_la = datetime(2026, 11, 23, 0, 0, tzinfo=LA)
    # Midnight in Shanghai (16 hours earlier) is not late yet for a customer in Los Angeles.
    assert watcher.scan(now=datetime(2026, 11, 23, 0, 0, tzinfo=SHANGHAI)) == []
    assert watcher.scan(now=end_of_day_la - timedelta(seconds=1)) == []
    [late] = watcher.scan(now=end_of_day_la)
    assert (late.id, late.type, late.occurred_at) == (
        "late:s-1001",
        EventType.SHIPMENT_LATE,
        end_of_day_la,
    )


def test_late_fires_once_and_not_for_a_parcel_delivered_on_its_expected_day(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    store.ship(START, order="1001", expected="2026-11-21")
    store.ship(START, order="1002", expected="2026-11-21")
    store.scan_update(datetime(2026, 11, 21, 23, 59, tzinfo=SHANGHAI), "delivered", order="1002")
    found = store.run(LateShipments(db=store.db), START + timedelta(days=6))
    assert [(e.id, e.occurred_at) for e in found] == [
        ("late:s-1001", datetime(2026, 11, 22, 0, 0, tzinfo=SHANGHAI))
    ]


def test_a_shipment_without_an_expected_day_is_never_late(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.ship(START)
    assert LateShipments(db=store.db).scan(now=START + timedelta(days=60)) == []


def test_idle_until_names_the_next_instant_a_scan_could_find_something(tmp_path: Path) -> None:
    store = Store(tmp_path)
    stalled = StalledShipments(db=store.db)
    assert stalled.idle_until(now=START) is None
    store.ship(START)
    assert stalled.idle_until(now=START) == START + timedelta(hours=48)
    for event in stalled.scan(now=START + timedelta(hours=48)):
        store.pipeline.ingest(event, source=stalled.source)
    assert stalled.idle_until(now=START + timedelta(hours=48)) is None
