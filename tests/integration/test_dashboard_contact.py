"""Correct a customer's contact from the order page (audited), then resend."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from support.core import database_for, make_runtime

from carebot.channels import ChannelKind
from carebot.channels.memory import MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store.models import ContactChangeRow, NotificationRow
from carebot.web.app import create_app

TOKEN = "admin-secret"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Shop:
    def __init__(self, client: httpx.AsyncClient, runtime: Runtime, sms: MemoryChannel) -> None:
        self.client, self.runtime, self.sms = client, runtime, sms

    async def csrf(self) -> str:
        page = (await self.client.get("/dashboard/orders/1001")).text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        return found.group(1)

    async def correct(self, field: str, value: str) -> httpx.Response:
        return await self.client.post(
            "/dashboard/customers/c-1/contact",
            data={
                "csrf": await self.csrf(),
                "next": "/dashboard/orders/1001",
                "field": field,
                "value": value,
            },
        )

    def row(self) -> NotificationRow:
        with self.runtime.db.transaction() as session:
            found = session.scalars(select(NotificationRow)).one()
            session.expunge(found)
            return found


@pytest.fixture(params=BACKENDS)
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    runtime, channels = make_runtime(
        tmp_path, clock=VirtualClock(NOW), db=database_for(request, tmp_path)
    )
    runtime.settings.admin_token = SecretStr(TOKEN)
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "evt-1001",
                "type": "order.shipped",
                "occurred_at": NOW.isoformat(),
                "order": {
                    "id": "1001",
                    # A digit short: not a number anyone can text.
                    "customer": {"id": "c-1", "name": "王芳", "phone": "1380013800"},
                    "shipping_address": {"country": "CN", "city": "杭州市"},
                },
                "shipment": {"id": "s-1", "tracking_number": "SF1"},
            }
        )
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        assert (await http.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        yield Shop(http, runtime, channels[ChannelKind.SMS])


async def test_a_corrected_number_is_audited_and_the_resend_reaches_it(shop: Shop) -> None:
    failed = shop.row()
    assert failed.status == "failed" and failed.recipient is None

    refused = await shop.correct("phone", "12345")
    assert refused.headers["location"].endswith("done=contact_invalid")
    assert shop.row().recipient is None

    done = await shop.correct("phone", "138 0013 8000")  # national form, read in CN
    assert done.headers["location"] == "/dashboard/orders/1001?done=contact"
    assert shop.row().recipient == "+8613800138000"
    with shop.runtime.db.transaction() as session:
        [change] = session.scalars(select(ContactChangeRow)).all()
        assert (change.field, change.old_value, change.new_value) == (
            "phone",
            "1380013800",
            "+8613800138000",
        )
        assert change.who == "dashboard" and change.messages_updated == 1
    page = (await shop.client.get("/dashboard/orders/1001?lang=en")).text
    assert 'id="contact-changes"' in page and "1380013800" in page

    resend = await shop.client.post(
        f"/dashboard/notifications/{failed.id}/resend",
        data={"csrf": await shop.csrf(), "next": "/dashboard/orders/1001"},
    )
    assert resend.status_code == 303
    await shop.runtime.dispatcher.run_once()
    assert shop.row().status == "sent"
    assert [m.to for m in shop.sms.sent] == ["+8613800138000"]


async def test_a_bad_email_is_refused_and_a_good_one_recorded(shop: Shop) -> None:
    assert (
        (await shop.correct("email", "wang at example"))
        .headers["location"]
        .endswith("contact_invalid")
    )
    assert (
        (await shop.correct("email", "wang@example.com"))
        .headers["location"]
        .endswith("done=contact")
    )
    with shop.runtime.db.transaction() as session:
        [change] = session.scalars(select(ContactChangeRow)).all()
        assert (change.field, change.old_value, change.new_value) == (
            "email",
            None,
            "wang@example.com",
        )
