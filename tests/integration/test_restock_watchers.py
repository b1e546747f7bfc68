"""The restock and disruption watchers on a real SQLite file, through the real pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support.core import make_runtime

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import Event, EventType, parse_event
from carebot.runtime import Runtime
from carebot.store.models import NotificationRow
from carebot.store.reorders import cancel_customer_pending
from carebot.watchers.restock import restock_watchers

SHANGHAI = ZoneInfo("Asia/Shanghai")
HANGZHOU = {"country": "CN", "province": "浙江省", "city": "杭州市", "postal_code": "310000"}
PUDONG = {"country": "CN", "province": "上海市", "city": "上海市", "postal_code": "200120"}
SUMMIT = {
    "id": "summit-hangzhou",
    "title": "峰会期间杭州物流管控",
    "regions": [{"country": "CN", "city": "杭州"}],
    "start": "2026-10-30",
    "end": "2026-11-06",
    "extra_transit_days": 7,
    "notice_days": 10,
}
WATCHED_RULES = ("restock-reminder", "stock-up-before-disruption", "shipment-at-risk")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def customer(cid: str) -> dict[str, Any]:
    phones = {"wang": "+8613800138000", "li": "+8613900139000", "zhao": "+8613700137000"}
    return {"id": cid, "name": cid, "phone": phones[cid], "timezone": "Asia/Shanghai"}


class Shop:
    """A runtime on virtual time, plus the issue-5 watchers scanning on every step."""

    def __init__(self, tmp_path: Path, start: datetime) -> None:
        self.clock = VirtualClock(start)
        self.runtime: Runtime
        self.channels: dict[ChannelKind, MemoryChannel]
        self.runtime, self.channels = make_runtime(tmp_path, clock=self.clock)
        self.watchers = restock_watchers(db=self.runtime.db, rules=self.runtime.rules)
        self.derived: list[Event] = []

    def send(self, when: datetime, **fields: Any) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        event = parse_event({"occurred_at": when.isoformat(), **fields})
        self.runtime.pipeline.ingest(event)

    def order(
        self,
        cid: str,
        oid: str,
        placed: datetime,
        address: dict[str, str],
        *,
        quantity: int = 4,
        deliver: bool = True,
    ) -> None:
        order = {
            "id": oid,
            "placed_at": placed.isoformat(),
            "customer": customer(cid),
            "shipping_address": address,
            "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": quantity}],
        }
        self.send(placed, id=f"{oid}-placed", type="order.placed", order=order)
        shipment = {"id": f"s-{oid}", "tracking_number": f"SF{oid}", "status": "in_transit"}
        self.send(
            placed + timedelta(hours=8),
            id=f"{oid}-shipped",
            type="order.shipped",
            order={"id": oid},
            shipment=shipment,
        )
        if deliver:
            self.send(
                placed + timedelta(days=2),
                id=f"{oid}-delivered",
                type="shipment.updated",
                order={"id": oid},
                shipment={"id": f"s-{oid}", "status": "delivered"},
            )

    def declare(self, when: datetime, disruption: dict[str, Any]) -> None:
        self.send(
            when,
            id=f"declare-{disruption['id']}-{when:%m%d}",
            type="disruption.declared",
            disruption=disruption,
        )

    def run_until(self, end: datetime, step: timedelta = timedelta(hours=6)) -> None:
        """Scan every watcher every ``step`` and ingest what they find, as the daemon does."""
        while self.clock.now() < end:
            self.clock.advance(step)
            for watcher in self.watchers:
                for event in watcher.scan(now=self.clock.now()):
                    result = self.runtime.pipeline.ingest(event, source=watcher.source)
                    if not result.duplicate:
                        self.derived.append(event)

    def notifications(
        self, where: Callable[[NotificationRow], bool] = lambda r: True
    ) -> list[NotificationRow]:
        with self.runtime.db.transaction() as session:
            rows = session.scalars(
                select(NotificationRow)
                .where(NotificationRow.rule_id.in_(WATCHED_RULES))
                .order_by(NotificationRow.due_at, NotificationRow.id)
            ).all()
            return [r for r in rows if where(r)]

    def first(self, rule_id: str, customer_id: str) -> NotificationRow:
        rows = self.notifications(lambda r: r.rule_id == rule_id and r.customer_id == customer_id)
        assert rows, f"no {rule_id} for {customer_id}"
        return rows[0]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    made = Shop(tmp_path, at("2026-09-01T09:00"))
    yield made
    asyncio.run(made.runtime.aclose())


def monthly_formula(shop: Shop, cid: str, address: dict[str, str], prefix: str) -> None:
    shop.order(cid, f"{prefix}1", at("2026-09-01T10:00"), address)
    shop.order(cid, f"{prefix}2", at("2026-10-01T10:00"), address)


def test_the_customer_in_the_disrupted_city_is_told_to_stock_up_days_before_the_ordinary_reminder(
    shop: Shop,
) -> None:
    monthly_formula(shop, "wang", HANGZHOU, "10")
    monthly_formula(shop, "li", PUDONG, "20")
    shop.declare(at("2026-10-10T09:00"), SUMMIT)
    shop.run_until(at("2026-10-21T12:00"))
    asyncio.run(shop.runtime.dispatcher.run_once())
    [sms] = [m for m in shop.channels[ChannelKind.SMS].sent if m.to == "+8613800138000"]
    shop.run_until(at("2026-11-02T00:00"))

    stock_up = shop.first("stock-up-before-disruption", "wang")
    ordinary = shop.first("restock-reminder", "li")
    assert stock_up.due_at <= ordinary.due_at - timedelta(days=3)
    assert stock_up.due_at < at("2026-10-30T00:00")  # before deliveries to Hangzhou stop
    advice = stock_up.context["disruption"]
    assert advice["title"] == "峰会期间杭州物流管控"
    assert advice["suggested_quantity"] >= 2
    # Li's own reminder comes before he runs out (11-02 10:00), with time for delivery.
    assert ordinary.due_at < at("2026-11-02T10:00") - timedelta(days=4)
    assert not shop.notifications(
        lambda r: r.rule_id == "stock-up-before-disruption" and r.customer_id == "li"
    )
    # Wang's ordinary reminder is pulled earlier than Li's, never later.
    assert shop.first("restock-reminder", "wang").due_at < ordinary.due_at
    assert "峰会期间杭州物流管控" in sms.body
    assert f"{advice['suggested_quantity']}件" in sms.body


def test_a_customer_who_reorders_before_the_reminder_gets_none(shop: Shop) -> None:
    monthly_formula(shop, "zhao", PUDONG, "30")
    shop.order("zhao", "303", at("2026-10-20T10:00"), PUDONG, deliver=False)
    shop.run_until(at("2026-11-05T00:00"))
    assert shop.notifications(lambda r: r.customer_id == "zhao") == []


def test_a_shipment_in_transit_into_a_disrupted_region_gets_a_heads_up(shop: Shop) -> None:
    shop.order("wang", "401", at("2026-10-28T10:00"), HANGZHOU, quantity=1, deliver=False)
    shop.declare(at("2026-10-28T20:00"), SUMMIT)
    shop.run_until(at("2026-10-29T12:00"))
    [warning] = shop.notifications(lambda r: r.rule_id == "shipment-at-risk")
    assert (warning.order_id, warning.shipment_id) == ("401", "s-401")
    assert warning.context["disruption"]["id"] == "summit-hangzhou"
    assert [e.type for e in shop.derived] == [EventType.DISRUPTION_SHIPMENT_AT_RISK]


def test_a_parcel_elsewhere_or_arriving_before_the_disruption_gets_no_heads_up(shop: Shop) -> None:
    shop.order("li", "402", at("2026-10-28T10:00"), PUDONG, quantity=1, deliver=False)
    # Without its expected date this parcel (shipped 10-28 18:00, ~3 days) would be at risk.
    shop.order("wang", "403", at("2026-10-28T10:00"), HANGZHOU, quantity=1, deliver=False)
    shop.send(
        at("2026-10-28T19:00"),
        id="exp-403",
        type="shipment.updated",
        order={"id": "403"},
        shipment={"id": "s-403", "expected_delivery": "2026-10-29"},
    )
    shop.declare(at("2026-10-28T20:00"), SUMMIT)
    shop.run_until(at("2026-10-29T12:00"))
    assert shop.notifications(lambda r: r.rule_id == "shipment-at-risk") == []


def test_nothing_is_sent_for_a_disruption_that_has_ended(shop: Shop) -> None:
    monthly_formula(shop, "wang", HANGZHOU, "50")
    shop.declare(at("2026-10-10T09:00"), SUMMIT)
    shop.declare(at("2026-10-11T09:00"), {**SUMMIT, "start": "2026-10-11", "end": "2026-10-12"})
    shop.order("wang", "503", at("2026-10-14T10:00"), HANGZHOU, quantity=1, deliver=False)
    shop.run_until(at("2026-10-28T00:00"))
    assert shop.notifications(lambda r: r.rule_id != "restock-reminder") == []
    assert not any(e.type != EventType.RESTOCK_DUE for e in shop.derived)


def test_a_reorder_cancels_a_reminder_that_is_still_pending(shop: Shop) -> None:
    shop.order("zhao", "601", at("2026-09-01T10:00"), PUDONG)
    shop.run_until(at("2026-09-24T15:00"))
    [pending] = shop.notifications(lambda r: r.rule_id == "restock-reminder")
    assert pending.status == "scheduled"
    shop.order("zhao", "602", at("2026-09-24T15:30"), PUDONG, deliver=False)
    [after] = shop.notifications(lambda r: r.rule_id == "restock-reminder")
    assert after.status == "cancelled"


def test_cancelling_by_customer_reaches_the_earlier_orders_pending_reminder(shop: Shop) -> None:
    shop.order("zhao", "701", at("2026-09-01T10:00"), PUDONG)
    shop.order("li", "702", at("2026-09-01T10:00"), PUDONG)
    shop.run_until(at("2026-09-24T15:00"))
    assert len(shop.notifications(lambda r: r.status == "scheduled")) == 2
    with shop.runtime.db.transaction() as session:
        cancelled = cancel_customer_pending(
            session,
            customer_id="zhao",
            rule_ids=["restock-reminder"],
            reason="cancelled by order.placed (703)",
            now=shop.clock.now(),
        )
    assert cancelled == 1
    assert [r.customer_id for r in shop.notifications(lambda r: r.status == "scheduled")] == ["li"]
