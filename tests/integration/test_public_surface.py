"""The public surface in process: metrics labels, health, ids, logout, login throttling."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from support.core import make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store.database import Database
from carebot.web.app import create_app

TOKEN = "admin-secret"
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@dataclass
class Site:
    client: httpx.AsyncClient
    runtime: Runtime
    clock: VirtualClock

    async def login(self, token: str = TOKEN) -> httpx.Response:
        return await self.client.post("/dashboard/login", data={"token": token})

    async def csrf(self) -> str:
        page = await self.client.get("/dashboard")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    clock = VirtualClock(NOW)
    runtime, _ = make_runtime(tmp_path, clock=clock)
    runtime.settings.admin_token = SecretStr(TOKEN)
    transport = httpx.ASGITransport(app=create_app(runtime), client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        yield Site(client, runtime, clock)


def _series(text: str) -> set[str]:
    """Every time series exposed (name and labels, without the value)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


async def test_made_up_paths_add_no_metrics_series(site: Site) -> None:
    await site.client.post("/webhooks/made-up-0", content=b"{}")
    await site.client.post("/twilio/made-up-0", content=b"{}")
    before = (await site.client.get("/metrics")).text
    for n in range(300):
        path = f"/webhooks/{'x' * 200}-{n}" if n % 2 else f"/twilio/{n}/{'y' * 100}"
        response = await site.client.post(path, content=b"{}")
        assert response.status_code in (404, 405)
    after = (await site.client.get("/metrics")).text
    assert _series(after) == _series(before)
    assert abs(len(after) - len(before)) < 64  # only the counts' digits moved
    assert 'source="unknown"' in after and "made-up" not in after


async def test_known_routes_keep_their_own_labels(site: Site) -> None:
    await site.client.post("/webhooks/shopify", content=b"{}")
    await site.client.post("/twilio/status", content=b"")
    text = (await site.client.get("/metrics")).text
    assert 'carebot_webhook_requests_total{outcome="unauthorized",source="shopify"} 1.0' in text
    assert 'carebot_webhook_requests_total{outcome="unauthorized",source="twilio_status"} 1.0' in (
        text
    )


async def test_healthz_says_database_unavailable_without_the_error_text(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # A real failure: a PostgreSQL URL whose user and password are wrong (or no server).
    unreachable = Database("postgresql+psycopg://carebot_nobody:wrong@127.0.0.1:1/secretdb")
    site.runtime.settings.webhooks.carebot_secret = SecretStr(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    broken = replace(site.runtime, db=unreachable)
    transport = httpx.ASGITransport(app=create_app(broken))
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
            response = await client.get("/healthz")
    unreachable.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "error": "database unavailable"}
    for secret in ("127.0.0.1", "carebot_nobody", "secretdb", "connection"):
        assert secret not in response.text
    assert "127.0.0.1" in caplog.text  # the operator's log has the reason


@pytest.mark.parametrize("raw", ["9" * 23, "9223372036854775808", "0", "²", "-1"])
async def test_an_admin_api_id_out_of_range_is_404(site: Site, raw: str) -> None:
    for action in ("cancel", "resend"):
        response = await site.client.post(
            f"/api/notifications/{raw}/{action}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 404, (raw, response.text)


@pytest.mark.parametrize("raw", ["9" * 23, "9223372036854775808", "²"])
async def test_a_dashboard_action_on_an_id_out_of_range_says_missing(site: Site, raw: str) -> None:
    assert (await site.login()).status_code == 303
    csrf = await site.csrf()
    response = await site.client.post(
        f"/dashboard/notifications/{raw}/cancel", data={"csrf": csrf, "next": "/dashboard"}
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("done=missing")


async def test_after_logout_the_old_cookie_is_refused_by_every_process(
    site: Site, tmp_path: Path
) -> None:
    assert (await site.login()).status_code == 303
    cookie = site.client.cookies["carebot_session"]
    # A second app on the same database (another daemon) accepts the same session...
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(site.runtime)), base_url="https://t"
    )
    other.cookies.set("carebot_session", cookie)
    assert (await other.get("/dashboard")).status_code == 200

    logout = await site.client.post("/dashboard/logout", data={"csrf": await site.csrf()})
    assert logout.status_code == 303

    # ...and neither accepts it after the logout, though it is authentic and not expired.
    site.client.cookies.set("carebot_session", cookie, path="/dashboard")
    assert (await site.client.get("/dashboard")).status_code == 303
    assert (await other.get("/dashboard")).status_code == 303, "refused in another process"
    action = await other.post("/dashboard/notifications/1/cancel", data={"csrf": "x"})
    assert action.status_code == 401
    await other.aclose()
    # A fresh login works again.
    site.client.cookies.clear()
    assert (await site.login()).status_code == 303
    assert (await site.client.get("/dashboard")).status_code == 200


async def test_wrong_tokens_earn_a_growing_wait_that_even_the_right_token_must_sit_out(
    site: Site,
) -> None:
    for _ in range(3):  # a few typos are free
        assert (await site.login("wrong")).status_code == 401
    waits = []
    for _ in range(4):
        assert (await site.login("wrong")).status_code == 401
        refused = await site.login(TOKEN)
        assert refused.status_code == 429, refused.text
        wait = int(refused.headers["Retry-After"])
        waits.append(wait)
        site.clock.advance(timedelta(seconds=wait))
    assert waits == [1, 2, 4, 8]
    assert (await site.login(TOKEN)).status_code == 303
    # A success clears the record: the next typo is free again.
    assert (await site.login("wrong")).status_code == 401
    assert (await site.login(TOKEN)).status_code == 303


async def test_the_throttle_is_per_client_address(site: Site) -> None:
    for _ in range(5):
        await site.login("wrong")
    assert (await site.login(TOKEN)).status_code == 429
    transport = httpx.ASGITransport(
        app=site.client._transport.app,  # type: ignore[attr-defined]
        client=("198.51.100.9", 5000),
    )
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as elsewhere:
        response = await elsewhere.post("/dashboard/login", data={"token": TOKEN})
    assert response.status_code == 303


async def test_contacts_are_whole_only_behind_the_admin_token_and_never_in_the_logs(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    phone = "+8613800138000"
    event = {
        "id": "evt-1001",
        "type": "order.shipped",
        "occurred_at": NOW.isoformat(),
        "order": {"id": "1001", "customer": {"id": "c-1", "phone": phone}},
        "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1"},
    }
    with caplog.at_level(logging.DEBUG):
        site.runtime.pipeline.ingest(parse_event(event))
        await site.runtime.dispatcher.run_once()
        anonymous = await site.client.get("/api/notifications?order_id=1001")
        api = await site.client.get(
            "/api/notifications?order_id=1001", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        consent = await site.client.post(
            "/api/consents",
            json={"channel": "sms", "address": phone, "opted_out": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        await site.login()
        order_page = await site.client.get("/dashboard/orders/1001")
        upcoming = await site.client.get("/dashboard/upcoming")
    assert anonymous.status_code == 401 and phone not in anonymous.text
    assert [n["to"] for n in api.json()["notifications"]] == [phone]
    assert consent.json()["address"] == phone
    assert phone in order_page.text and order_page.headers["cache-control"] == "no-store"
    assert phone not in upcoming.text
    ours = " ".join(
        str(record.__dict__) for record in caplog.records if record.name.startswith("carebot")
    )
    assert phone not in ours and "+86138****8000" in ours
