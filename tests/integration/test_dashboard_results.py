"""Results per rule over a period, with the reorders restock reminders brought."""

from __future__ import annotations

import re
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
from carebot.store.database import Database
from carebot.web.app import create_app

TOKEN = "admin-secret"
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _placed(runtime: Runtime, order: str, customer: str) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}",
                "type": "order.placed",
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {
                    "id": order,
                    "placed_at": runtime.clock.now().isoformat(),
                    "customer": {"id": customer, "phone": "+8613800138000"},
                    "shipping_address": {"country": "CN", "city": "杭州市"},
                    "items": [{"sku": "MILK-900G", "title": "奶粉", "quantity": 1}],
                },
            }
        )
    )


def _reminder(runtime: Runtime, order: str) -> None:
    restock: dict[str, Any] = {
        "sku": "MILK-900G",
        "title": "奶粉",
        "run_out_on": "2026-12-10",
        "order_by": "2026-12-05",
    }
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"restock:{order}",
                "type": "restock.due",
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {"id": order},
                "restock": restock,
            }
        )
    )


def _cell(page: str, rule: str, column: str) -> str:
    row = re.search(rf'<tr id="result-{rule}">(.*?)</tr>', page, flags=re.S)
    assert row, page
    found = re.search(rf'class="num {column}">([^<]*)<', row.group(1))
    assert found, row.group(1)
    return found.group(1)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return database_for(request, tmp_path)


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
async def test_a_reorder_within_the_window_is_attributed_to_the_reminder(
    tmp_path: Path, database: Database
) -> None:
    clock = VirtualClock(NOW)
    runtime, _ = make_runtime(tmp_path, clock=clock, db=database)
    runtime.settings.admin_token = SecretStr(TOKEN)
    _placed(runtime, "1001", "c-1")
    _placed(runtime, "2001", "c-2")
    _reminder(runtime, "1001")
    _reminder(runtime, "2001")
    await runtime.dispatcher.run_once()
    clock.advance(timedelta(days=3))
    _placed(runtime, "1002", "c-1")  # c-1 reorders 3 days later; c-2 does not
    clock.advance(timedelta(days=1))
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        assert (await http.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        page = (await http.get("/dashboard/results?from=2026-11-25&to=2026-12-06")).text
        assert _cell(page, "restock-reminder", "sent") == "2"
        assert _cell(page, "restock-reminder", "reorders") == "1"
        # A period that ended before the reminders went out has none.
        before = (await http.get("/dashboard/results?from=2026-11-01&to=2026-11-30")).text
        assert 'id="result-restock-reminder"' not in before
