"""The admin API: list an order's notifications, cancel a pending one, resend a failed one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from support.core import make_runtime

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.exceptions import ChannelError
from carebot.runtime import Runtime
from carebot.web.app import create_app

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LATE_EVENING = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: held to 09:00


@dataclass
class Admin:
    client: httpx.AsyncClient
    runtime: Runtime
    channels: dict[ChannelKind, MemoryChannel]


def _clock(admin: Admin) -> VirtualClock:
    assert isinstance(admin.runtime.clock, VirtualClock)
    return admin.runtime.clock


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    runtime, channels = make_runtime(
        tmp_path, clock=VirtualClock(LATE_EVENING), quiet_hours="21:00-09:00"
    )
    runtime.settings.admin_token = SecretStr(TOKEN)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield Admin(client, runtime, channels)


def _ship(runtime: Runtime, order: str) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}",
                "type": "order.shipped",
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {"id": order, "customer": {"id": f"c-{order}", "phone": "+8613800138000"}},
                "shipment": {"id": f"s-{order}", "carrier": "SF Express", "tracking_number": "SF1"},
            }
        )
    )


async def test_an_order_s_pending_message_is_listed_and_can_be_cancelled_once(
    admin: Admin,
) -> None:
    _ship(admin.runtime, "1001")
    listed = await admin.client.get("/api/notifications?order_id=1001", headers=AUTH)
    assert listed.status_code == 200
    [item] = listed.json()["notifications"]
    assert (item["rule"], item["status"], item["to"]) == ("shipped", "scheduled", "+8613800138000")

    cancelled = await admin.client.post(f"/api/notifications/{item['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200
    again = await admin.client.post(f"/api/notifications/{item['id']}/cancel", headers=AUTH)
    assert again.status_code == 409
    [after] = (await admin.client.get("/api/notifications?order_id=1001", headers=AUTH)).json()[
        "notifications"
    ]
    assert after["status"] == "cancelled" and "admin-api" in after["reason"]
    _clock(admin).set(datetime(2026, 11, 21, 1, 0, tzinfo=UTC))  # 09:00 local
    await admin.runtime.dispatcher.run_once()
    assert admin.channels[ChannelKind.SMS].sent == []


async def test_a_failed_message_can_be_resent_and_then_goes_out(admin: Admin) -> None:
    _clock(admin).set(datetime(2026, 11, 21, 2, 0, tzinfo=UTC))  # 10:00 local
    _ship(admin.runtime, "1002")
    admin.channels[ChannelKind.SMS].fail_next(ChannelError("twilio 30003", retryable=False))
    await admin.runtime.dispatcher.run_once()
    [item] = (await admin.client.get("/api/notifications?order_id=1002", headers=AUTH)).json()[
        "notifications"
    ]
    assert item["status"] == "failed"
    resent = await admin.client.post(f"/api/notifications/{item['id']}/resend", headers=AUTH)
    assert resent.status_code == 200
    await admin.runtime.dispatcher.run_once()
    assert [m.to for m in admin.channels[ChannelKind.SMS].sent] == ["+8613800138000"]
    # A sent message is not resent by hand.
    twice = await admin.client.post(f"/api/notifications/{item['id']}/resend", headers=AUTH)
    assert twice.status_code == 409


async def test_the_admin_routes_want_the_token(admin: Admin) -> None:
    _ship(admin.runtime, "1003")
    assert (await admin.client.get("/api/notifications?order_id=1003")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (
        await admin.client.post("/api/notifications/1/cancel", headers=wrong)
    ).status_code == 401
    assert (
        await admin.client.post("/api/notifications/999/cancel", headers=AUTH)
    ).status_code == 404
    assert (await admin.client.get("/api/notifications", headers=AUTH)).status_code == 400
