"""The disruptions page counts the parcels a disruption catches (where, and arriving when),
links to them, and shows one marked ended as ended."""

from __future__ import annotations

import re
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
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _ship(runtime: Runtime, order: str, city: str, expected: str) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}",
                "type": "order.shipped",
                "occurred_at": NOW.isoformat(),
                "order": {
                    "id": order,
                    "customer": {"id": f"c-{order}", "phone": "+8613800138000"},
                    "shipping_address": {"country": "CN", "city": city},
                },
                "shipment": {
                    "id": f"s-{order}",
                    "tracking_number": f"SF{order}",
                    "status": "in_transit",
                    "expected_delivery": expected,
                },
            }
        )
    )


@pytest.fixture(params=BACKENDS)
async def client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(NOW), db=database_for(request, tmp_path))
    runtime.settings.admin_token = SecretStr(TOKEN)
    _ship(runtime, "early-hz", "杭州市", "2026-11-22")  # arrives before it starts
    _ship(runtime, "late-hz", "杭州市", "2026-12-10")  # caught
    _ship(runtime, "late-sh", "上海市", "2026-12-10")  # elsewhere
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "declare-summit",
                "type": "disruption.declared",
                "occurred_at": NOW.isoformat(),
                "disruption": {
                    "id": "summit",
                    "title": "峰会期间杭州物流管控",
                    "regions": [{"country": "CN", "city": "杭州市"}],
                    "start": "2026-12-01",
                    "end": "2026-12-05",
                },
            }
        )
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        assert (await http.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        yield http


async def test_only_parcels_arriving_after_the_start_where_it_is_are_counted_and_linked(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard/disruptions?lang=en")).text
    caught = re.search(r'id="caught-summit" href="([^"]+)">(\d+) / (\d+)<', page)
    assert caught, page
    assert caught.group(2, 3) == ("1", "1")
    assert re.search(r'id="state-summit">upcoming<', page)
    # The Spring Festival pause is months away: none of these parcels meets it.
    festival = re.search(r'id="caught-cn-spring-festival-2027"[^>]*>(\d+) /', page)
    assert festival and festival.group(1) == "0"
    listing = (await client.get(caught.group(1).replace("&amp;", "&"))).text
    assert 'href="/dashboard/orders/late-hz"' in listing
    assert (
        "/dashboard/orders/early-hz" not in listing and "/dashboard/orders/late-sh" not in listing
    )
