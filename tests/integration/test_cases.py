"""Service recovery through the real pipeline, watchers and dispatcher (SQLite file).

A complaint reply opens a case; a later reply joins it; a case nobody acts on alerts the
merchant once per step; a resolved case asks the customer, whose answer closes or reopens it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support.core import MESSAGE_TEMPLATES, RULES, database_for, migrated_database

from carebot.cases import Outcome, check_update
from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime, build_runtime
from carebot.settings import AlertSettings, ServiceSettings, Settings
from carebot.store import schedule
from carebot.store.case_report import case_report
from carebot.store.database import Database
from carebot.store.models import CaseRow, NotificationRow
from carebot.watchers.cases import OverdueCases

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "+8613800138000"
ALERTS = "ops@shop.example"
# A Friday: a 4 h deadline opened at 17:00 runs over the weekend into Monday.
DELIVERED = datetime(2026, 11, 20, 14, 0, tzinfo=SHANGHAI)
ASKED = DELIVERED + timedelta(days=5)


class Shop:
    def __init__(
        self,
        tmp_path: Path,
        *,
        service: ServiceSettings | None = None,
        db: Database | None = None,
    ) -> None:
        self.clock = VirtualClock(DELIVERED - timedelta(days=1))
        url = f"sqlite:///{tmp_path / 'carebot.db'}"
        if db is not None:
            url = db.engine.url.render_as_string(hide_password=False)
        self.settings = Settings(
            database_url=url,
            rules_dir=RULES,
            templates_dir=MESSAGE_TEMPLATES,
            default_timezone="Asia/Shanghai",
            default_locale="zh-CN",
            shop_name="测试小店",
            alerts=AlertSettings(email=ALERTS),
            service=service or ServiceSettings(),
        )
        db = db or migrated_database(tmp_path / "carebot.db")
        self.channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
        self.runtime: Runtime = build_runtime(
            self.settings, clock=self.clock, channels=self.channels, db=db, inline_db=True
        )
        self.overdue = next(w for w in self.runtime.watchers if isinstance(w, OverdueCases))
        self.events = 0

    def ingest(self, when: datetime, **fields: Any) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        self.events += 1
        fields.setdefault("id", f"evt-{self.events}")
        self.runtime.pipeline.ingest(parse_event({"occurred_at": when.isoformat(), **fields}))

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

    async def watch(self, instant: datetime) -> None:
        await self.run_until(instant)
        for event in self.overdue.scan(now=instant):
            self.runtime.pipeline.ingest(event, source=self.overdue.source)
        await self.run_until(instant + timedelta(minutes=1))

    async def delivered_order(self, oid: str = "1001") -> None:
        self.ingest(
            DELIVERED - timedelta(days=1),
            type="order.shipped",
            order={
                "id": oid,
                "customer": {"id": "c-42", "name": "王芳", "phone": PHONE},
                "shipping_address": {"country": "CN", "city": "杭州市"},
                "items": [{"sku": "MILK-900G", "title": "奶粉", "quantity": 1}],
            },
            shipment={"id": f"s-{oid}", "carrier": "SF Express", "tracking_number": f"SF{oid}"},
        )
        self.ingest(
            DELIVERED, type="shipment.updated", shipment={"id": f"s-{oid}", "status": "delivered"}
        )
        await self.run_until(ASKED)

    async def reply(self, when: datetime, body: str) -> None:
        await self.run_until(when)
        self.ingest(
            when, type="message.received", message={"channel": "sms", "from": PHONE, "body": body}
        )
        await self.run_until(when + timedelta(minutes=5))

    def step(self, when: datetime, status: str, note: str = "") -> None:
        self.ingest(
            when,
            type="case.updated",
            order={"id": "1001"},
            case={"status": status, "note": note, "who": "李"},
        )

    def cases(self) -> list[CaseRow]:
        with self.runtime.db.transaction() as session:
            rows = list(session.scalars(select(CaseRow).order_by(CaseRow.id)))
            session.expunge_all()
            return rows

    def sent(self, rule: str) -> list[NotificationRow]:
        with self.runtime.db.transaction() as session:
            return list(
                session.scalars(
                    select(NotificationRow)
                    .where(NotificationRow.rule_id == rule, NotificationRow.status == "sent")
                    .order_by(NotificationRow.id)
                )
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Shop:
    """The cases flow on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL)."""
    return Shop(tmp_path, db=database_for(request, tmp_path))


async def test_a_complaint_reply_opens_one_case_that_later_replies_join(shop: Shop) -> None:
    await shop.delivered_order()
    friday_five_pm = datetime(2026, 11, 27, 17, 0, tzinfo=SHANGHAI)
    await shop.reply(friday_five_pm, "2分，罐子压坏了")
    await shop.reply(friday_five_pm + timedelta(hours=1), "还有，客服也不理人")

    [case] = shop.cases()
    assert (case.order_id, case.customer_id, case.category) == (
        "1001",
        "c-42",
        "damaged_in_transit",
    )
    assert case.products == [{"sku": "MILK-900G", "title": "奶粉"}]
    assert case.text == "2分，罐子压坏了" and case.status == "open"
    # 4 business hours (09:00-18:00, Monday to Friday): one on Friday, three on Monday.
    assert case.deadline_at == datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
    assert [h["note"] for h in case.history] == ["2分，罐子压坏了", "还有，客服也不理人"]


async def test_a_happy_reply_opens_no_case(shop: Shop) -> None:
    await shop.delivered_order()
    await shop.reply(datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI), "5分，很好")
    assert shop.cases() == []


async def test_an_ignored_case_alerts_the_merchant_once_per_step(shop: Shop) -> None:
    await shop.delivered_order()
    opened = datetime(2026, 11, 27, 17, 0, tzinfo=SHANGHAI)
    await shop.reply(opened, "1分 压坏了")
    deadline = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)
    await shop.watch(deadline - timedelta(minutes=1))
    assert shop.sent("case-overdue") == []
    await shop.watch(deadline)
    await shop.watch(deadline + timedelta(hours=1))
    [alert] = shop.sent("case-overdue")
    assert alert.recipient == ALERTS and "1001" in (alert.subject or "")
    assert shop.cases()[0].overdue_at == deadline

    # Contacted: a new step with its own deadline, and its own single alert.
    contacted = deadline + timedelta(hours=2)
    shop.step(contacted, "contacted", "打电话道歉")
    await shop.watch(contacted + timedelta(hours=3))
    assert len(shop.sent("case-overdue")) == 1
    await shop.watch(contacted + timedelta(days=1))
    await shop.watch(contacted + timedelta(days=2))
    assert len(shop.sent("case-overdue")) == 2


async def test_resolving_asks_the_customer_and_a_five_closes_the_case_as_recovered(
    shop: Shop,
) -> None:
    await shop.delivered_order()
    opened = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    await shop.reply(opened, "2分 压坏了")
    shop.step(opened + timedelta(hours=1), "contacted", "called")
    shop.step(opened + timedelta(hours=3), "resolved", "sent a new tin")
    await shop.run_until(opened + timedelta(hours=4))
    [question] = shop.sent("recovery-check")
    assert question.recipient == PHONE and "1001" in (question.body or "")

    await shop.reply(opened + timedelta(hours=5), "5")
    [case] = shop.cases()
    assert (case.status, case.recovered) == ("resolved", True)
    assert [h["status"] for h in case.history] == ["open", "contacted", "resolved", "resolved"]
    with shop.runtime.db.transaction() as session:
        report = case_report(session)
    assert (report.recovered, report.recoverable) == (1, 1)
    assert report.median_first_contact_hours == 1.0
    assert report.median_resolution_hours == 3.0


async def test_a_low_answer_to_the_question_reopens_the_case(shop: Shop) -> None:
    await shop.delivered_order()
    opened = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    await shop.reply(opened, "1分 发错货了")
    shop.step(opened + timedelta(hours=1), "resolved", "reshipped")
    await shop.reply(opened + timedelta(hours=2), "2，还是不对")
    [case] = shop.cases()
    assert (case.status, case.recovered, case.step) == ("open", False, 2)
    assert case.deadline_at is not None and case.deadline_at > opened + timedelta(hours=2)
    with shop.runtime.db.transaction() as session:
        assert case_report(session).recovered == 0
    # Resolving it again asks again.
    shop.step(opened + timedelta(hours=3), "resolved", "right size sent")
    await shop.run_until(opened + timedelta(hours=4))
    assert len(shop.sent("recovery-check")) == 2


async def test_steps_the_status_does_not_allow_are_refused_and_ignored(shop: Shop) -> None:
    await shop.delivered_order()
    opened = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    await shop.reply(opened, "1分 压坏了")
    [case] = shop.cases()
    shop.step(opened + timedelta(hours=1), "dismissed", "not our fault")
    with shop.runtime.db.transaction() as session:
        assert check_update(session, case.id, "contacted") is Outcome.CONFLICT
        assert check_update(session, case.id, "open") is Outcome.DONE
        assert check_update(session, 999, "open") is Outcome.NOT_FOUND
    shop.step(opened + timedelta(hours=2), "contacted")
    assert shop.cases()[0].status == "dismissed"


async def test_a_case_opened_by_hand_gets_its_category_deadline(tmp_path: Path) -> None:
    shop = Shop(
        tmp_path,
        service=ServiceSettings(business_hours="always", business_days="mon-sun", holidays=""),
    )
    await shop.delivered_order()
    at = datetime(2026, 11, 28, 23, 0, tzinfo=SHANGHAI)  # a Saturday night
    shop.ingest(
        at,
        type="case.updated",
        order={"id": "1001"},
        case={"status": "open", "category": "wrong_item", "note": "客户来电"},
    )
    [case] = shop.cases()
    assert (case.category, case.text, case.history[0]["who"]) == (
        "wrong_item",
        "客户来电",
        "merchant",
    )
    assert case.deadline_at == at + timedelta(hours=4)
    # One active case per order: a second opening by hand changes nothing.
    shop.ingest(
        at + timedelta(minutes=1),
        type="case.updated",
        order={"id": "1001"},
        case={"status": "open"},
    )
    assert len(shop.cases()) == 1


async def test_the_weekly_digest_is_a_rule_the_merchant_can_switch_off(tmp_path: Path) -> None:
    import shutil

    from carebot.watchers.cases import WeeklyDigest

    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    shop = Shop(tmp_path)
    digest = next(w for w in shop.runtime.watchers if isinstance(w, WeeklyDigest))
    monday = datetime(2026, 11, 30, 9, 5, tzinfo=SHANGHAI)
    [event] = digest.scan(now=monday)
    assert event.id == "digest:2026-11-30" and event.occurred_at == monday - timedelta(minutes=5)
    shop.runtime.pipeline.ingest(event, source=digest.source)
    assert digest.scan(now=monday + timedelta(minutes=10)) == []  # once a week
    # Switched off: enabled: false in the rule file.
    path = rules / "digest.yaml"
    path.write_text(path.read_text("utf-8").replace("enabled: true", "enabled: false"), "utf-8")
    from carebot.rulebook.loader import load_rulebook

    off = WeeklyDigest(db=shop.runtime.db, rules=lambda: load_rulebook(rules), zone="Asia/Shanghai")
    assert off.scan(now=monday + timedelta(days=7)) == []


async def test_report_cases_prints_the_measures(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from carebot.cli import main

    await shop.delivered_order()
    await shop.reply(datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI), "1分 压坏了")
    os.environ["CAREBOT_DATABASE_URL"] = shop.settings.database_url
    try:
        assert main(["report", "cases"]) == 0
        text = capsys.readouterr().out
        assert main(["report", "cases", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    finally:
        del os.environ["CAREBOT_DATABASE_URL"]
    assert "cases: 1  open: 1" in text and "damaged_in_transit" in text
    assert data["by_category"] == {"damaged_in_transit": 1}
    assert data["by_product"][0]["sku"] == "MILK-900G" and data["recoverable"] == 1
