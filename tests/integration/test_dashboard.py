"""The dashboard in process: login, sessions, CSRF, pages, actions, masking, language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from support.core import make_runtime

from carebot.clock import VirtualClock
from carebot.events import parse_event
from carebot.exceptions import Problem, RuleError
from carebot.runtime import Runtime
from carebot.store.history import declared_disruptions
from carebot.store.models import EventRow, NotificationRow
from carebot.web.app import create_app

TOKEN = "admin-secret"
PHONE = "+8613800138000"
EMAIL = "wang@example.com"
LATE_EVENING = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai: held to 09:00

PAGES = [
    "/dashboard",
    "/dashboard/orders",
    "/dashboard/orders?q=1001",
    "/dashboard/orders/1001",
    "/dashboard/upcoming",
    "/dashboard/feedback",
    "/dashboard/disruptions",
    "/dashboard/rules",
    "/dashboard/results",
]
ACTIONS = [
    "/dashboard/logout",
    "/dashboard/notifications/1/cancel",
    "/dashboard/notifications/1/resend",
    "/dashboard/disruptions/summit/end",
]


@dataclass
class Dashboard:
    client: httpx.AsyncClient
    runtime: Runtime

    async def login(self) -> None:
        response = await self.client.post("/dashboard/login", data={"token": TOKEN})
        assert response.status_code == 303, response.text

    async def csrf(self, path: str = "/dashboard") -> str:
        page = await self.client.get(path)
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        return match.group(1)


def _ship(runtime: Runtime, order: str) -> None:
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": f"evt-{order}",
                "type": "order.shipped",
                "occurred_at": runtime.clock.now().isoformat(),
                "order": {
                    "id": order,
                    "customer": {"id": f"c-{order}", "phone": PHONE, "email": EMAIL},
                    "shipping_address": {"country": "CN", "city": "杭州市"},
                    "items": [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2}],
                },
                "shipment": {"id": f"s-{order}", "carrier": "SF Express", "tracking_number": "SF1"},
            }
        )
    )


def _notification(runtime: Runtime, order: str) -> NotificationRow:
    with runtime.db.transaction() as session:
        row = session.scalars(select(NotificationRow).where(NotificationRow.order_id == order))
        return row.one()


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(LATE_EVENING), quiet_hours="21:00-09:00")
    runtime.settings.admin_token = SecretStr(TOKEN)
    _ship(runtime, "1001")
    transport = httpx.ASGITransport(app=create_app(runtime))
    # https: the session cookie is Secure because the public URL is https.
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        yield Dashboard(client, runtime)


async def test_every_page_redirects_to_the_login_form_without_a_session(
    dashboard: Dashboard,
) -> None:
    for path in PAGES:
        response = await dashboard.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/dashboard/login?next=%2Fdashboard"), path
    login = await dashboard.client.get("/dashboard/login")
    assert login.status_code == 200 and 'name="token"' in login.text


async def test_every_action_is_401_without_a_session(dashboard: Dashboard) -> None:
    for path in ACTIONS:
        response = await dashboard.client.post(path, data={"csrf": "x"})
        assert response.status_code == 401, path
    assert _notification(dashboard.runtime, "1001").status == "scheduled"


async def test_a_forged_or_foreign_session_cookie_is_not_a_session(dashboard: Dashboard) -> None:
    await dashboard.login()
    real = dashboard.client.cookies["carebot_session"]
    issued, generation, ident, mac = real.split(".")
    for forged in (
        f"{issued}.{generation}.{ident}x.{mac}",
        f"{int(issued) + 1}.{generation}.{ident}.{mac}",
        f"{issued}.{generation}x.{ident}.{mac}",
        "a.b.c.d",
    ):
        dashboard.client.cookies.set("carebot_session", forged, path="/dashboard")
        assert (await dashboard.client.get("/dashboard")).status_code == 303, forged
    # A token change logs everybody out: the key is derived from it.
    dashboard.client.cookies.set("carebot_session", real, path="/dashboard")
    assert (await dashboard.client.get("/dashboard")).status_code == 200
    dashboard.runtime.settings.admin_token = SecretStr("rotated")
    assert (await dashboard.client.get("/dashboard")).status_code == 303


async def test_without_an_admin_token_the_dashboard_does_not_exist(dashboard: Dashboard) -> None:
    dashboard.runtime.settings.admin_token = None
    for path in [*PAGES, "/dashboard/login"]:
        assert (await dashboard.client.get(path)).status_code == 404, path
    for path in [*ACTIONS, "/dashboard/login"]:
        assert (await dashboard.client.post(path, data={"token": ""})).status_code == 404, path


async def test_a_wrong_token_is_refused_and_the_right_one_sets_a_strict_secure_cookie(
    dashboard: Dashboard,
) -> None:
    wrong = await dashboard.client.post("/dashboard/login", data={"token": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    right = await dashboard.client.post(
        "/dashboard/login", data={"token": TOKEN, "next": "/dashboard/rules"}
    )
    assert right.status_code == 303 and right.headers["location"] == "/dashboard/rules"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie


async def test_login_never_redirects_outside_the_dashboard(dashboard: Dashboard) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/api/notifications"):
        response = await dashboard.client.post(
            "/dashboard/login", data={"token": TOKEN, "next": target}
        )
        assert response.headers["location"] == "/dashboard", target


async def test_every_page_renders_after_login(dashboard: Dashboard) -> None:
    await dashboard.login()
    for path in PAGES:
        response = await dashboard.client.get(path)
        assert response.status_code in (200, 303), (path, response.text)
        if response.status_code == 200:
            assert "<html" in response.text and "no-store" in response.headers["cache-control"]


async def test_an_action_without_the_session_s_csrf_token_is_refused(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    row = _notification(dashboard.runtime, "1001")
    url = f"/dashboard/notifications/{row.id}/cancel"
    assert (await dashboard.client.post(url)).status_code == 403
    assert (await dashboard.client.post(url, data={"csrf": "forged"})).status_code == 403
    # Another session's token does not fit this session.
    other = httpx.AsyncClient(transport=dashboard.client._transport, base_url="https://t")
    async with other:
        await other.post("/dashboard/login", data={"token": TOKEN})
        page = await other.get("/dashboard")
        foreign = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert foreign
    assert (await dashboard.client.post(url, data={"csrf": foreign.group(1)})).status_code == 403
    assert _notification(dashboard.runtime, "1001").status == "scheduled"


async def test_a_pending_message_is_cancelled_from_the_timeline_with_who_and_when(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    row = _notification(dashboard.runtime, "1001")
    csrf = await dashboard.csrf("/dashboard/orders/1001")
    response = await dashboard.client.post(
        f"/dashboard/notifications/{row.id}/cancel",
        data={"csrf": csrf, "next": "/dashboard/orders/1001"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/orders/1001?done=cancel"
    after = _notification(dashboard.runtime, "1001")
    assert after.status == "cancelled"
    assert after.reason == f"cancelled by dashboard at {LATE_EVENING.isoformat()}"
    page = await dashboard.client.get(response.headers["location"])
    assert 'id="flash"' in page.text and "status-cancelled" in page.text
    again = await dashboard.client.post(
        f"/dashboard/notifications/{row.id}/cancel", data={"csrf": csrf}
    )
    assert again.headers["location"] == "/dashboard?done=conflict"


async def test_a_failed_message_is_resent_from_the_dashboard(dashboard: Dashboard) -> None:
    await dashboard.login()
    row = _notification(dashboard.runtime, "1001")
    with dashboard.runtime.db.transaction() as session:
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.id == row.id)
            .values(status="failed", reason="provider said no")
        )
    csrf = await dashboard.csrf()
    response = await dashboard.client.post(
        f"/dashboard/notifications/{row.id}/resend", data={"csrf": csrf}
    )
    assert response.headers["location"] == "/dashboard?done=resend"
    after = _notification(dashboard.runtime, "1001")
    assert after.status == "scheduled" and after.reason is not None
    assert after.reason.startswith("resent by dashboard")


async def test_contacts_are_masked_everywhere_but_on_the_order_timeline(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    with dashboard.runtime.db.transaction() as session:
        session.execute(
            update(NotificationRow).values(status="failed", reason=f"21211: {PHONE} is invalid")
        )
    for path in PAGES:
        if path == "/dashboard/orders/1001":
            continue
        text = (await dashboard.client.get(path, follow_redirects=True)).text
        if path == "/dashboard/orders?q=1001":
            assert 'id="order-id"' in text  # an exact order id opens the timeline
            continue
        assert PHONE not in text and EMAIL not in text, path
    overview = (await dashboard.client.get("/dashboard")).text
    assert "+86138****8000 is invalid" in overview
    found = (await dashboard.client.get("/dashboard/orders", params={"q": PHONE})).text
    assert "+86138****8000" in found and PHONE not in found
    assert 'href="/dashboard/orders/1001"' in found
    by_email = (await dashboard.client.get("/dashboard/orders", params={"q": EMAIL})).text
    assert "w***@example.com" in by_email and EMAIL not in by_email
    timeline = (await dashboard.client.get("/dashboard/orders/1001")).text
    assert PHONE in timeline and EMAIL in timeline


async def test_the_timeline_shows_the_events_and_the_planned_message_with_its_due_time(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    page = (await dashboard.client.get("/dashboard/orders/1001")).text
    assert "order.shipped" in page and "evt-1001" in page
    assert "shipped" in page and "status-scheduled" in page
    assert "2026-11-21 09:00" in page  # held by quiet hours to 09:00 Shanghai time
    missing = await dashboard.client.get("/dashboard/orders/nope")
    assert missing.status_code == 404


async def test_the_language_follows_lang_then_the_remembered_choice_then_accept_language(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    assert "概览" in (await dashboard.client.get("/dashboard")).text  # default zh-CN
    english = await dashboard.client.get("/dashboard", headers={"accept-language": "en-US,en"})
    assert "Overview" in english.text and 'lang="en"' in english.text
    chosen = await dashboard.client.get("/dashboard/rules?lang=en")
    assert "Validation state" in chosen.text
    # The explicit choice is remembered for the next page, whatever the browser says.
    later = await dashboard.client.get("/dashboard", headers={"accept-language": "zh-CN"})
    assert "Queue depth" in later.text
    back = await dashboard.client.get("/dashboard?lang=zh-CN")
    assert "队列深度" in back.text


async def test_the_upcoming_page_counts_the_message_held_to_nine_o_clock(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    overview = (await dashboard.client.get("/dashboard?lang=en")).text
    assert re.search(r'id="queue-depth">1<', overview)
    assert "2026-11-21 09:00" in overview  # next due, in the shop's zone
    page = (await dashboard.client.get("/dashboard/upcoming")).text
    assert re.search(r'id="upcoming-total">1<', page)
    assert "<title>09: 1</title>" in page  # the by-hour chart: held to 09:00 local
    assert page.count('title="1"') == 1  # one cell of the day-by-hour grid holds it


async def test_the_feedback_page_shows_an_empty_state_without_replies(
    dashboard: Dashboard,
) -> None:
    await dashboard.login()
    page = (await dashboard.client.get("/dashboard/feedback")).text
    assert 'id="feedback-empty"' in page


async def test_the_rules_page_shows_the_last_reload_error(dashboard: Dashboard) -> None:
    await dashboard.login()
    assert 'id="rules-ok"' in (await dashboard.client.get("/dashboard/rules")).text
    dashboard.runtime.rules.last_error = RuleError(
        [Problem(path="rules/shipping.yaml", line=3, col=5, message="unknown <field>")]
    )
    page = (await dashboard.client.get("/dashboard/rules")).text
    assert 'id="rules-error"' in page and "unknown &lt;field&gt;" in page


async def test_a_declared_disruption_is_listed_and_can_be_marked_ended_today(
    dashboard: Dashboard,
) -> None:
    runtime = dashboard.runtime
    runtime.pipeline.ingest(
        parse_event(
            {
                "id": "declare-summit",
                "type": "disruption.declared",
                "occurred_at": runtime.clock.now().isoformat(),
                "disruption": {
                    "id": "summit",
                    "title": "峰会期间杭州物流管控",
                    "regions": [{"country": "CN", "city": "杭州市"}],
                    "start": "2026-11-15",
                    "end": "2026-12-20",
                },
            }
        )
    )
    await dashboard.login()
    page = (await dashboard.client.get("/dashboard/disruptions")).text
    assert 'id="disruption-summit"' in page and "cn-spring-festival-2027" in page
    csrf = await dashboard.csrf("/dashboard/disruptions")
    response = await dashboard.client.post(
        "/dashboard/disruptions/summit/end",
        data={"csrf": csrf, "next": "/dashboard/disruptions"},
    )
    assert response.headers["location"] == "/dashboard/disruptions?done=end"
    with runtime.db.transaction() as session:
        latest = declared_disruptions(session)[-1]
        source = session.scalars(
            select(EventRow.source).order_by(EventRow.id.desc()).limit(1)
        ).one()
    # Ended now: its last day was yesterday, and the page says so at once.
    assert latest["id"] == "summit" and latest["end"] == date(2026, 11, 19).isoformat()
    assert source == "dashboard"
    page = (await dashboard.client.get("/dashboard/disruptions?lang=en")).text
    assert re.search(r'id="state-summit">ended<', page)
    assert 'action="/dashboard/disruptions/summit/end"' not in page
