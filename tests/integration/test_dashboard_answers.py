"""The overview answers a shop owner's questions with numbers that open the rows behind them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from support.core import database_for, make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store import cases as case_store
from carebot.web.app import create_app

TOKEN = "admin-secret"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _event(
    runtime: Runtime, order: str, kind: str, *, contact: bool = True, **shipment: Any
) -> None:
    customer: dict[str, Any] = {"id": f"c-{order}", "name": "王芳"}
    if contact:
        customer["phone"] = f"+861380013{int(order):04d}"
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}-{kind}-{runtime.clock.now().timestamp()}",
                "type": kind,
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {
                    "id": order,
                    "customer": customer,
                    "shipping_address": {"country": "CN", "city": "杭州市"},
                },
                "shipment": {"id": f"s-{order}", "tracking_number": f"SF{order}", **shipment},
            }
        )
    )


def _case(runtime: Runtime, order: str, status: str) -> None:
    with runtime.db.transaction() as session:
        case = case_store.open_case(
            session,
            order_id=order,
            category="damaged_in_transit",
            text="奶粉罐子压坏了，很失望",
            at=NOW - timedelta(days=1),
            deadline=NOW + timedelta(hours=4),
            who="test",
            note="",
        )
        case.status = status


@pytest.fixture(params=BACKENDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    clock = VirtualClock(NOW - timedelta(days=5))
    runtime, _ = make_runtime(tmp_path, clock=clock, db=database_for(request, tmp_path))
    runtime.settings.admin_token = SecretStr(TOKEN)
    _event(runtime, "1001", "order.shipped", status="in_transit")  # no scan since: stalled
    clock.advance(timedelta(days=5))
    _event(runtime, "1002", "order.shipped", status="failed_attempt")
    _event(runtime, "1003", "order.shipped", status="exception")
    yesterday = (NOW - timedelta(days=1)).date().isoformat()
    _event(runtime, "1004", "order.shipped", status="in_transit", expected_delivery=yesterday)
    _event(runtime, "1005", "order.shipped", contact=False)  # fails: no phone, no email
    _case(runtime, "1002", "open")
    _case(runtime, "1003", "resolved")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        assert (await http.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        yield http


async def _follow(client: httpx.AsyncClient, page: str, anchor: str) -> tuple[int, set[str]]:
    """The number at ``anchor`` and the orders its link lists."""
    found = re.search(rf'id="{anchor}" href="([^"]+)">(\d+)<', page)
    assert found, anchor
    listing = (await client.get(found.group(1).replace("&amp;", "&"))).text
    orders = set(re.findall(r'href="/dashboard/orders/([^"#?]+)"', listing))
    return int(found.group(2)), orders


async def test_each_number_on_the_overview_opens_the_orders_behind_it(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard?lang=zh-CN")).text
    assert "本周投诉" in page and "投递失败" in page
    assert await _follow(client, page, "trouble-stalled") == (1, {"1001"})
    assert await _follow(client, page, "trouble-failed_attempt") == (1, {"1002"})
    assert await _follow(client, page, "trouble-exception") == (1, {"1003"})
    assert await _follow(client, page, "trouble-late") == (1, {"1004"})
    assert await _follow(client, page, "complaints-damaged_in_transit") == (2, {"1002", "1003"})
    assert await _follow(client, page, "unhandled-damaged_in_transit") == (1, {"1002"})
    assert await _follow(client, page, "failures") == (1, {"1005"})


async def test_the_next_24_hours_show_each_message_s_masked_recipient_and_text(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard?lang=zh-CN")).text
    found = re.search(r'id="next-shipped" href="([^"]+)">(\d+)<', page)
    assert found and found.group(2) == "3"  # 1002–1004; 1001's fell due days ago
    upcoming = (await client.get(found.group(1).replace("&amp;", "&"))).text
    rows = re.findall(r'<tr id="due-\d+">(.*?)</tr>', upcoming, flags=re.S)
    assert len(rows) == 3
    assert all("+86138****" in row and "SF100" in row for row in rows)
    assert "+8613800131002" not in upcoming
