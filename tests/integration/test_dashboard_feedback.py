"""The feedback page lists every complaint that raised an alert, over a chosen period, with
the products by name; the cases page and a case's own page show the case; customer words
stay escaped on every page that shows them. On SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from support.core import MESSAGE_TEMPLATES, RULES, database_for

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime, build_runtime
from carebot.settings import AlertSettings, Settings
from carebot.store import schedule
from carebot.store.models import CaseRow, NotificationRow
from carebot.web.app import create_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
TOKEN = "admin-secret"
DELIVERED = datetime(2026, 11, 20, 14, 0, tzinfo=SHANGHAI)
ASKED = DELIVERED + timedelta(days=5)  # MILK-* asks five days after delivery
SCRIPT = "<script>alert(1)</script>"
# order → (reply, raises an alert)
REPLIES = {
    "2001": ("1", True),  # a low score
    "2002": ("奶粉罐子压坏了，很失望", True),  # a complaint without a score
    "2003": ("3分，发错货了", True),  # a 3-star complaint
    "2004": ("2", True),  # a low score, no complaint words
    "2005": (f"5星 但是物流太慢 {SCRIPT}", True),  # a good score, complaint words
    "2006": ("5 很好", False),
    "2007": ("4", False),
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'carebot.db'}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
        public_url="https://care.example.com",
        shop_name="测试小店",
        alerts=AlertSettings(email="ops@shop.example"),
        admin_token=SecretStr(TOKEN),
    )


async def _drain(runtime: Runtime, clock: VirtualClock, until: datetime) -> None:
    while True:
        with runtime.db.transaction() as session:
            due = schedule.next_due_at(session)
        if due is None or due > until:
            break
        clock.set(max(due, clock.now()))
        await runtime.dispatcher.run_once()
    clock.set(max(until, clock.now()))


def _ingest(runtime: Runtime, when: datetime, **fields: Any) -> None:
    runtime.pipeline.ingest(parse_event({"occurred_at": when.isoformat(), **fields}))


async def replies_received(runtime: Runtime, clock: VirtualClock) -> None:
    """Seven orders delivered, asked for a score five days later, and answered."""
    for n, order in enumerate(REPLIES):
        _ingest(
            runtime,
            DELIVERED - timedelta(days=1),
            id=f"evt-{order}-shipped",
            type="order.shipped",
            order={
                "id": order,
                "customer": {"id": f"c-{order}", "phone": f"+86138001380{n:02d}"},
                "items": [{"sku": f"MILK-{order}", "title": f"奶粉 {order} 号", "quantity": 1}],
            },
            shipment={"id": f"s-{order}", "tracking_number": f"SF{order}"},
        )
        _ingest(
            runtime,
            DELIVERED,
            id=f"evt-{order}-delivered",
            type="shipment.updated",
            shipment={"id": f"s-{order}", "status": "delivered"},
        )
    clock.set(DELIVERED)
    await _drain(runtime, clock, ASKED + timedelta(hours=1))
    for n, (order, (body, _)) in enumerate(REPLIES.items()):
        _ingest(
            runtime,
            ASKED + timedelta(hours=1, minutes=n),
            id=f"twilio:SM{order}",
            type="message.received",
            message={"channel": "sms", "from": f"+86138001380{n:02d}", "body": body},
        )
    await _drain(runtime, clock, ASKED + timedelta(hours=3))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def shop(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    clock = VirtualClock(DELIVERED - timedelta(days=1))
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(
        _settings(tmp_path),
        clock=clock,
        channels=channels,
        db=database_for(request, tmp_path),
        inline_db=True,
    )
    await replies_received(runtime, clock)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        assert (await client.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        yield client, runtime


def _alerted_orders(runtime: Runtime) -> list[str]:
    with runtime.db.transaction() as session:
        contexts = session.scalars(
            select(NotificationRow.context).where(
                NotificationRow.rule_id == "service-alert",
                NotificationRow.status == "sent",
            )
        ).all()
    return sorted(str(c["order"]["id"]) for c in contexts)


def _listed(page: str) -> list[str]:
    rows = re.findall(r'<tr class="complaint".*?</tr>', page, re.S)
    return sorted(re.search(r"/dashboard/orders/(\d+)", row).group(1) for row in rows)  # type: ignore[union-attr]


async def test_every_alert_has_its_row_scored_or_not(
    shop: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = shop
    alerted = _alerted_orders(runtime)
    assert alerted == sorted(o for o, (_, alert) in REPLIES.items() if alert)
    page = (await client.get("/dashboard/feedback?lang=zh-CN")).text
    assert _listed(page) == alerted
    assert 'id="complaints-total">5<' in page
    row = re.search(r'<tr class="complaint".*?/dashboard/orders/2002.*?</tr>', page, re.S)
    assert row and "未打分" in row.group(0) and "运输破损" in row.group(0)
    assert "奶粉 2002 号" in row.group(0)
    # Categories per product by the product's name and the category's label.
    table = page[page.index('id="feedback-by-product"') :]
    assert "奶粉 2003 号" in table and "发错货/尺码不对" in table
    assert "wrong_item" not in table and "MILK-2003" not in table


async def test_the_period_chooses_the_complaints(
    shop: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, _ = shop
    day = ASKED.date()
    before = (day - timedelta(days=10)).isoformat(), (day - timedelta(days=1)).isoformat()
    page = (await client.get(f"/dashboard/feedback?from={before[0]}&to={before[1]}")).text
    assert _listed(page) == [] and 'id="complaints-total">0<' in page
    page = (await client.get(f"/dashboard/feedback?from={day}&to={day}")).text
    assert len(_listed(page)) == 5
    # Reversed and unreadable days do not break the page.
    assert (await client.get(f"/dashboard/feedback?from={day}&to=2026-01-01")).status_code == 200
    assert (
        await client.get("/dashboard/feedback?from=x&to=2026-13-45&page=abc")
    ).status_code == 200


async def test_the_cases_pages_list_and_show_each_case(
    shop: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = shop
    with runtime.db.transaction() as session:
        opened = dict(session.execute(select(CaseRow.order_id, CaseRow.id)).all())
    assert sorted(opened) == _alerted_orders(runtime)
    listing = (await client.get("/dashboard/cases?status=active&lang=zh-CN")).text
    assert 'id="cases-count">5<' in listing
    assert set(re.findall(r'href="/dashboard/cases/(\d+)"', listing)) == {
        str(i) for i in opened.values()
    }
    assert (await client.get("/dashboard/cases?status=resolved")).text.count("case-row-") == 0
    detail = (await client.get(f"/dashboard/cases/{opened['2002']}?lang=zh-CN")).text
    assert "奶粉罐子压坏了" in detail and "奶粉 2002 号" in detail and "待处理" in detail
    assert 'action="/dashboard/cases/{}/contacted"'.format(opened["2002"]) in detail
    assert (await client.get("/dashboard/cases/999999")).status_code == 404
    assert (await client.get("/dashboard/cases/abc")).status_code == 404


async def test_customer_words_are_escaped_on_every_page_that_shows_them(
    shop: tuple[httpx.AsyncClient, Runtime],
) -> None:
    client, runtime = shop
    with runtime.db.transaction() as session:
        case_id = session.scalar(select(CaseRow.id).where(CaseRow.order_id == "2005"))
    # A note with markup, typed on the dashboard, goes into the case's history.
    detail = (await client.get(f"/dashboard/cases/{case_id}")).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', detail).group(1)  # type: ignore[union-attr]
    await client.post(
        f"/dashboard/cases/{case_id}/contacted",
        data={"csrf": csrf, "note": f"回电 {SCRIPT}", "next": f"/dashboard/cases/{case_id}"},
    )
    pages = [
        "/dashboard/feedback",
        "/dashboard/cases",
        f"/dashboard/cases/{case_id}",
        "/dashboard/orders/2005",
    ]
    for path in pages:
        page = (await client.get(path)).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert SCRIPT not in page, path
    for path in (f"/dashboard/cases/{case_id}", "/dashboard/orders/2005"):
        assert "回电 &lt;script&gt;" in (await client.get(path)).text, path
