"""Reply capture and service recovery through the real pipeline and dispatcher (SQLite file)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support.core import MESSAGE_TEMPLATES, RULES, migrated_database

from carebot.channels import ChannelKind, MemoryChannel
from carebot.cli import main
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime, build_runtime
from carebot.settings import AlertSettings, Settings
from carebot.store import schedule
from carebot.store.feedback import feedback_report
from carebot.store.models import FeedbackRow, NotificationRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "+8613800138000"
ALERTS = "ops@shop.example"
DELIVERED = datetime(2026, 11, 20, 14, 0, tzinfo=SHANGHAI)
# MILK-* asks five days after delivery, in the 10:00-20:00 window.
ASKED = DELIVERED + timedelta(days=5)


class Shop:
    def __init__(self, tmp_path: Path, *, alerts: str | None = ALERTS) -> None:
        self.clock = VirtualClock(DELIVERED - timedelta(days=1))
        self.db_path = tmp_path / "carebot.db"
        self.settings = Settings(
            database_url=f"sqlite:///{self.db_path}",
            rules_dir=RULES,
            templates_dir=MESSAGE_TEMPLATES,
            quiet_hours="21:00-09:00",
            default_timezone="Asia/Shanghai",
            default_locale="zh-CN",
            public_url="https://care.example.com",
            shop_name="测试小店",
            alerts=AlertSettings(email=alerts),
        )
        db = migrated_database(self.db_path)
        self.channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
        self.runtime: Runtime = build_runtime(
            self.settings, clock=self.clock, channels=self.channels, db=db, inline_db=True
        )

    def ingest(self, when: datetime, **fields: Any) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        event = parse_event({"occurred_at": when.isoformat(), **fields})
        self.runtime.pipeline.ingest(event)

    async def run_until(self, instant: datetime) -> None:
        while True:
            with self.runtime.db.transaction() as session:
                due = schedule.next_due_at(session)
            if due is None or due > instant:
                break
            if due > self.clock.now():
                self.clock.set(due)
            await self.runtime.dispatcher.run_once()
        if instant > self.clock.now():
            self.clock.set(instant)

    async def delivered_order(self, oid: str = "1001", sku: str = "MILK-900G") -> None:
        self.ingest(
            DELIVERED - timedelta(days=1),
            id=f"evt-{oid}-shipped",
            type="order.shipped",
            order={
                "id": oid,
                "customer": {"id": "c-42", "name": "王芳", "phone": PHONE},
                "shipping_address": {"country": "CN", "city": "杭州市"},
                "items": [{"sku": sku, "title": f"商品 {sku}", "quantity": 1}],
            },
            shipment={"id": f"s-{oid}", "carrier": "SF Express", "tracking_number": f"SF{oid}"},
        )
        self.ingest(
            DELIVERED,
            id=f"evt-{oid}-delivered",
            type="shipment.updated",
            shipment={"id": f"s-{oid}", "status": "delivered"},
        )
        await self.run_until(ASKED)

    async def reply(self, when: datetime, body: str, sid: str = "SM1") -> None:
        await self.run_until(when)
        self.ingest(
            when,
            id=f"twilio:{sid}",
            type="message.received",
            message={"channel": "sms", "from": PHONE, "body": body},
        )
        await self.run_until(when + timedelta(hours=13))

    def rows(self, rule: str) -> list[NotificationRow]:
        with self.runtime.db.transaction() as session:
            return list(
                session.scalars(select(NotificationRow).where(NotificationRow.rule_id == rule))
            )

    def feedback(self) -> list[FeedbackRow]:
        with self.runtime.db.transaction() as session:
            return list(session.scalars(select(FeedbackRow).order_by(FeedbackRow.id)))


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)


async def test_a_late_evening_complaint_alerts_the_merchant_at_once_and_apologises_at_nine(
    shop: Shop,
) -> None:
    await shop.delivered_order()
    night = datetime(2026, 11, 25, 23, 10, tzinfo=SHANGHAI)
    await shop.reply(night, "1 罐子压坏了")
    [alert] = shop.rows("service-alert")
    assert (alert.status, alert.recipient, alert.audience) == ("sent", ALERTS, "merchant")
    assert alert.sent_at == night
    [apology] = shop.rows("feedback-thanks")
    assert apology.sent_at == datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI)
    [stored] = shop.feedback()
    assert (stored.order_id, stored.score, stored.category, stored.text) == (
        "1001",
        1,
        "damaged_in_transit",
        "1 罐子压坏了",
    )
    assert stored.notification_id == shop.rows("follow-up")[0].id


async def test_a_happy_reply_is_stored_and_thanked_without_an_alert(shop: Shop) -> None:
    await shop.delivered_order()
    await shop.reply(ASKED + timedelta(hours=1), "５分 很满意")
    assert shop.rows("service-alert") == []
    [thanks] = shop.rows("feedback-thanks")
    assert thanks.status == "sent" and thanks.body is not None and "感谢" in thanks.body
    assert [(f.score, f.category) for f in shop.feedback()] == [(5, "other")]


async def test_only_the_first_reply_to_a_request_is_its_feedback(shop: Shop) -> None:
    await shop.delivered_order()
    await shop.reply(ASKED + timedelta(hours=1), "4")
    await shop.reply(ASKED + timedelta(hours=2), "2 其实漏了", sid="SM2")
    assert [f.score for f in shop.feedback()] == [4]
    assert shop.rows("service-alert") == []


async def test_a_reply_after_fourteen_days_or_without_a_request_is_not_feedback(
    shop: Shop,
) -> None:
    await shop.reply(DELIVERED, "2 压坏了", sid="SM0")  # nothing was asked yet
    await shop.delivered_order()
    await shop.reply(ASKED + timedelta(days=14, hours=1), "1 压坏了")
    assert shop.feedback() == []
    assert shop.rows("service-alert") == []


async def test_without_an_alerts_address_the_alert_fails_with_the_reason(tmp_path: Path) -> None:
    shop = Shop(tmp_path, alerts=None)
    await shop.delivered_order()
    await shop.reply(ASKED + timedelta(hours=1), "1")
    [alert] = shop.rows("service-alert")
    assert alert.status == "failed" and "CAREBOT_ALERTS__EMAIL" in (alert.reason or "")


async def test_the_report_puts_the_product_with_complaints_first(
    shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await shop.delivered_order("1001", "MILK-900G")
    await shop.reply(ASKED + timedelta(hours=1), "2 罐子压坏了", sid="SM1")
    with shop.runtime.db.transaction() as session:
        report = feedback_report(session)
    assert report.replies == 1 and report.by_category == {"damaged_in_transit": 1}
    [product] = report.products
    assert (product.sku, product.low_scores, product.by_category) == (
        "MILK-900G",
        1,
        {"damaged_in_transit": 1},
    )
    monkeypatch.setenv("CAREBOT_DATABASE_URL", f"sqlite:///{shop.db_path}")
    assert main(["report", "feedback", "--json", "--since", "2026-11-01T00:00:00+08:00"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["by_product"][0]["sku"] == "MILK-900G"
    assert printed["by_score"] == {"2": 1}
    assert main(["report", "feedback", "--since", "2026-12-31T00:00:00+08:00"]) == 0
    assert capsys.readouterr().out.strip() == "no feedback yet"
