"""Cases on the dashboard and the admin API: steps with session and CSRF, labels per language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from support.core import database_for, make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.runtime import Runtime
from carebot.store.models import CaseRow, NotificationRow
from carebot.web.app import create_app

TOKEN = "admin-secret"
PHONE = "+8613800138000"
NOON = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
BEARER = {"Authorization": f"Bearer {TOKEN}"}

# Every page on SQLite and on PostgreSQL (CAREBOT_TEST_POSTGRES_URL).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@dataclass
class Shop:
    client: httpx.AsyncClient
    runtime: Runtime

    async def login(self) -> None:
        response = await self.client.post("/dashboard/login", data={"token": TOKEN})
        assert response.status_code == 303

    async def csrf(self, path: str) -> str:
        page = await self.client.get(path)
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)

    def cases(self) -> list[CaseRow]:
        with self.runtime.db.transaction() as session:
            rows = list(session.scalars(select(CaseRow).order_by(CaseRow.id)))
            session.expunge_all()
            return rows


@pytest.fixture(params=BACKENDS)
async def shop(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shop]:
    runtime, _ = make_runtime(
        tmp_path, clock=VirtualClock(NOON), db=database_for(request, tmp_path)
    )
    runtime.settings.admin_token = SecretStr(TOKEN)
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "evt-1001",
                "type": "order.shipped",
                "occurred_at": NOON.isoformat(),
                "order": {
                    "id": "1001",
                    "customer": {"id": "c-1", "phone": PHONE},
                    "items": [{"sku": "MILK-900G", "title": "奶粉", "quantity": 1}],
                },
                "shipment": {"id": "s-1", "carrier": "SF Express", "tracking_number": "SF1"},
            }
        )
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        yield Shop(client, runtime)


async def _open_by_hand(shop: Shop, category: str = "damaged_in_transit") -> None:
    csrf = await shop.csrf("/dashboard/orders/1001")
    response = await shop.client.post(
        "/dashboard/cases/open",
        data={"csrf": csrf, "order_id": "1001", "category": category, "note": "客户来电"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?done=open"


async def test_case_forms_need_a_session_and_its_csrf_token(shop: Shop) -> None:
    for path in ("/dashboard/cases/open", "/dashboard/cases/1/contacted"):
        assert (await shop.client.post(path, data={"csrf": "x"})).status_code == 401
    await shop.login()
    data = {"order_id": "1001", "csrf": "forged"}
    assert (await shop.client.post("/dashboard/cases/open", data=data)).status_code == 403
    assert shop.cases() == []


async def test_a_case_is_opened_by_hand_stepped_and_shown_with_its_history(shop: Shop) -> None:
    await shop.login()
    await _open_by_hand(shop)
    [case] = shop.cases()
    assert (case.status, case.category, case.text) == ("open", "damaged_in_transit", "客户来电")
    csrf = await shop.csrf("/dashboard/orders/1001")
    shop.runtime.clock.set(NOON + timedelta(hours=1))  # type: ignore[attr-defined]
    response = await shop.client.post(
        f"/dashboard/cases/{case.id}/contacted",
        data={"csrf": csrf, "note": "已致电", "next": "/dashboard/orders/1001"},
    )
    assert response.headers["location"] == "/dashboard/orders/1001?done=contacted"
    [case] = shop.cases()
    assert case.status == "contacted" and case.contacted_at == NOON + timedelta(hours=1)
    assert [(h["who"], h["status"], h["note"]) for h in case.history] == [
        ("dashboard", "open", "客户来电"),
        ("dashboard", "contacted", "已致电"),
    ]
    page = (await shop.client.get("/dashboard/orders/1001?lang=zh-CN")).text
    assert 'data-status="contacted"' in page and "已致电" in page
    # A step the status does not allow is a conflict, and changes nothing.
    again = await shop.client.post(f"/dashboard/cases/{case.id}/contacted", data={"csrf": csrf})
    assert again.headers["location"] == "/dashboard?done=conflict"
    assert shop.cases()[0].step == 1


async def test_resolving_on_the_dashboard_puts_the_question_to_the_customer_on_the_schedule(
    shop: Shop,
) -> None:
    await shop.login()
    await _open_by_hand(shop)
    [case] = shop.cases()
    csrf = await shop.csrf("/dashboard/orders/1001")
    await shop.client.post(f"/dashboard/cases/{case.id}/resolved", data={"csrf": csrf})
    with shop.runtime.db.transaction() as session:
        question = session.scalars(
            select(NotificationRow).where(NotificationRow.rule_id == "recovery-check")
        ).one()
    assert (question.recipient, question.status) == (PHONE, "scheduled")


async def test_chinese_pages_show_chinese_labels_and_english_pages_english_ones(
    shop: Shop,
) -> None:
    await shop.login()
    await _open_by_hand(shop)
    zh = (await shop.client.get("/dashboard/orders/1001?lang=zh-CN")).text
    assert "运输破损" in zh and "待处理" in zh and "已发货" in zh
    assert ">damaged_in_transit<" not in zh
    en = (await shop.client.get("/dashboard/orders/1001?lang=en")).text
    assert "Damaged in transit" in en and "运输破损" not in en
    feedback = (await shop.client.get("/dashboard/feedback?lang=zh-CN")).text
    assert "运输破损" in feedback and 'id="cases-total">1<' in feedback
    rules = (await shop.client.get("/dashboard/rules?lang=en")).text
    assert "Weekly service digest" in rules


async def test_the_admin_api_lists_and_steps_cases_behind_the_token(shop: Shop) -> None:
    await shop.login()
    await _open_by_hand(shop)
    [case] = shop.cases()
    client = shop.client
    assert (await client.get("/api/cases")).status_code == 401
    listed = (await client.get("/api/cases?status=open", headers=BEARER)).json()["cases"]
    assert [(c["id"], c["order_id"], c["status"]) for c in listed] == [(case.id, "1001", "open")]
    url = f"/api/cases/{case.id}"
    done = await client.post(f"{url}/contacted", json={"note": "called"}, headers=BEARER)
    assert done.status_code == 200 and done.json()["status"] == "contacted"
    assert done.json()["history"][-1] == {
        "at": NOON.isoformat(),
        "who": "admin-api",
        "status": "contacted",
        "note": "called",
    }
    assert (await client.post(f"{url}/reopen", headers=BEARER)).status_code == 409
    assert (await client.post("/api/cases/999/resolved", headers=BEARER)).status_code == 404
    assert (await client.post(f"{url}/fixed", headers=BEARER)).status_code == 404
    bad = await client.post(f"{url}/resolved", content=b"{", headers=BEARER)
    assert bad.status_code == 400
    assert (await client.post(f"{url}/dismissed", headers=BEARER)).json()["status"] == "dismissed"
    reopened = await client.post(f"{url}/reopen", headers=BEARER)
    assert reopened.json()["status"] == "open"
