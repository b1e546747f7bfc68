"""The dashboard's search box: order id or part of it, any spelling of a phone number, email
address, tracking number."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from support.core import database_for, make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.web.app import create_app

TOKEN = "admin-secret"
NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _ship(runtime: Runtime, order: str, phone: str, email: str, tracking: str) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}",
                "type": "order.shipped",
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {
                    "id": order,
                    "customer": {"id": f"c-{order}", "phone": phone, "email": email},
                    "shipping_address": {"country": "CN", "city": "杭州市"},
                    "items": [{"sku": "MILK-900G", "title": "奶粉", "quantity": 1}],
                },
                "shipment": {"id": f"s-{order}", "carrier": "SF", "tracking_number": tracking},
            }
        )
    )


@pytest.fixture(params=BACKENDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    runtime, _ = make_runtime(
        tmp_path, clock=VirtualClock(NOON), db=database_for(request, tmp_path)
    )
    runtime.settings.admin_token = SecretStr(TOKEN)
    # One customer's number stored in E.164, another's as the shop sent it (national form).
    _ship(runtime, "SO-20261120-1001", "+8613800138000", "wang@example.com", "SF1234567890")
    _ship(runtime, "SO-20261120-2002", "139 0013 9000", "li@example.com", "YT9876543210")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        response = await http.post("/dashboard/login", data={"token": TOKEN})
        assert response.status_code == 303
        yield http


async def _hits(client: httpx.AsyncClient, query: str) -> set[str]:
    page = await client.get("/dashboard/orders", params={"q": query})
    assert page.status_code == 200, page.text
    hits = set()
    for order in ("SO-20261120-1001", "SO-20261120-2002"):
        if f'href="/dashboard/orders/{order}"' in page.text:
            hits.add(order)
    return hits


@pytest.mark.parametrize(
    "query",
    ["13800138000", "138 0013 8000", "138-0013-8000", "+86 138-0013-8000", "+8613800138000"],
)
async def test_a_phone_number_is_found_however_it_is_typed(
    client: httpx.AsyncClient, query: str
) -> None:
    assert await _hits(client, query) == {"SO-20261120-1001"}


async def test_a_number_stored_in_national_form_is_found_by_its_international_form(
    client: httpx.AsyncClient,
) -> None:
    assert await _hits(client, "+86 139 0013 9000") == {"SO-20261120-2002"}
    assert await _hits(client, "13900139000") == {"SO-20261120-2002"}


async def test_part_of_an_order_id_email_and_tracking_number_find_the_order(
    client: httpx.AsyncClient,
) -> None:
    assert await _hits(client, "2002") == {"SO-20261120-2002"}
    assert await _hits(client, "20261120") == {"SO-20261120-1001", "SO-20261120-2002"}
    assert await _hits(client, "LI@example.com") == {"SO-20261120-2002"}
    assert await _hits(client, "sf1234567890") == {"SO-20261120-1001"}
    assert await _hits(client, "nothing-like-this") == set()
    # A LIKE wildcard typed into the box is a character, not "anything".
    assert await _hits(client, "%") == set()


async def test_a_found_phone_number_is_masked_and_an_exact_id_opens_the_timeline(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard/orders", params={"q": "138 0013 8000"})).text
    assert "13800138000" not in page and "138 0013 8000" not in page
    exact = await client.get("/dashboard/orders", params={"q": "SO-20261120-1001"})
    assert exact.status_code == 303
    assert exact.headers["location"] == "/dashboard/orders/SO-20261120-1001"
