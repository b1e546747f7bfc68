"""Email unsubscribe and the admin consent API over HTTP, and the headers at a real SMTP server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from support.core import EMAIL, MESSAGE_TEMPLATES, PHONE, RULES, insert, migrated_database, planned

from carebot.channels import ChannelKind, MemoryChannel
from carebot.channels.base import Channel
from carebot.channels.smtp_email import SMTPEmail
from carebot.clock import VirtualClock
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings, SmtpSettings
from carebot.store import consent
from carebot.store.models import ConsentRow
from carebot.unsubscribe import make_token, signing_key, token_of
from carebot.web.app import create_app

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ADMIN_TOKEN = "s3cret-admin-token"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class App:
    client: httpx.AsyncClient
    runtime: Runtime
    channels: dict[ChannelKind, Channel]

    def consents(self) -> list[tuple[str, str, bool, str]]:
        with self.runtime.db.transaction() as session:
            rows = session.scalars(select(ConsentRow).order_by(ConsentRow.id))
            return [(r.channel, r.address, r.opted_out, r.source) for r in rows]

    def opted_out(self, channel: str, address: str) -> bool:
        with self.runtime.db.transaction() as session:
            return consent.is_opted_out(session, channel=channel, address=address)

    def token(self, address: str) -> str:
        with self.runtime.db.transaction() as session:
            return token_of(session, address, now=self.runtime.clock.now())

    def old_token(self, address: str) -> str:
        with self.runtime.db.transaction() as session:
            return make_token(signing_key(session), address)


async def start(
    tmp_path: Path, *, admin_token: str | None = ADMIN_TOKEN, email: Channel | None = None
) -> tuple[httpx.AsyncClient, App]:
    db_path = tmp_path / "carebot.db"
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        rules_dir=RULES,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        public_url="https://care.example.com",
        shop_name="测试小店",
        admin_token=admin_token,
    )
    channels: dict[ChannelKind, Channel] = {
        ChannelKind.SMS: MemoryChannel(kind=ChannelKind.SMS),
        ChannelKind.EMAIL: email or MemoryChannel(kind=ChannelKind.EMAIL),
    }
    runtime = build_runtime(
        settings,
        clock=VirtualClock(NOW),
        channels=channels,
        db=migrated_database(db_path),
        inline_db=True,
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    client = httpx.AsyncClient(transport=transport, base_url="https://care.example.com")
    return client, App(client=client, runtime=runtime, channels=channels)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    client, app = await start(tmp_path)
    async with client:
        yield app
    app.runtime.db.dispose()


def sent(app: App, kind: ChannelKind) -> list[Any]:
    channel = app.channels[kind]
    assert isinstance(channel, MemoryChannel)
    return channel.sent


# --- GET and POST /unsubscribe/{token} ---------------------------------------------------------


async def test_the_get_page_asks_in_chinese_and_english_and_unsubscribes_nobody(app: App) -> None:
    token = app.token(EMAIL)

    response = await app.client.get(f"/unsubscribe/{token}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "退订" in page and "Unsubscribe" in page
    assert f'<form method="post" action="/unsubscribe/{token}">' in page
    assert 'name="List-Unsubscribe" value="One-Click"' in page
    assert EMAIL not in page  # the address is shown masked
    assert app.consents() == []


async def test_a_one_click_post_records_the_email_opt_out_with_its_source(app: App) -> None:
    response = await app.client.post(f"/unsubscribe/{app.token(EMAIL)}", data=ONE_CLICK)

    assert response.status_code == 200
    assert "已退订" in response.text and "unsubscribed" in response.text
    assert app.consents() == [("email", EMAIL, True, "unsubscribe-link")]


async def test_posting_twice_is_harmless(app: App) -> None:
    for _ in range(2):
        response = await app.client.post(f"/unsubscribe/{app.token(EMAIL)}", data=ONE_CLICK)
        assert response.status_code == 200
    assert app.consents() == [("email", EMAIL, True, "unsubscribe-link")]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "token",
    ["nonsense", "d2FuZ0BleGFtcGxlLmNvbQ.AAAAAAAAAAAAAAAAAAAAAA", "forged"],
)
async def test_a_bad_token_is_404_and_records_nothing(app: App, method: str, token: str) -> None:
    if token == "forged":
        good = app.old_token("me@example.com")
        token = make_token(b"not the key", EMAIL).split(".")[0] + "." + good.split(".")[1]
    response = await app.client.request(method, f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 404
    assert app.consents() == []


async def test_a_link_from_before_random_tokens_still_unsubscribes(app: App) -> None:
    response = await app.client.post(f"/unsubscribe/{app.old_token(EMAIL)}", data=ONE_CLICK)
    assert response.status_code == 200
    assert app.consents() == [("email", EMAIL, True, "unsubscribe-link")]


async def test_a_token_is_random_one_per_address_and_tells_nothing_of_the_address(
    app: App,
) -> None:
    token = app.token(EMAIL)
    assert app.token(EMAIL.upper()) == token  # one per address, whatever its case
    assert app.token("li@example.com") != token
    assert "." not in token
    decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"wang" not in decoded and b"example" not in decoded
    page = await app.client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "w***@example.com" in page.text


async def test_after_the_one_click_email_stops_but_sms_still_goes(app: App) -> None:
    await app.client.post(f"/unsubscribe/{app.token(EMAIL)}", data=ONE_CLICK)
    insert(
        app.runtime.db,
        planned("mail", due_at=NOW, channel="email", recipient=EMAIL),
        planned("text", due_at=NOW),
        now=NOW,
    )

    report = await app.runtime.dispatcher.run_once()

    assert (report.sent, report.suppressed) == (1, 1)
    assert sent(app, ChannelKind.EMAIL) == []
    assert [m.to for m in sent(app, ChannelKind.SMS)] == [PHONE]


# --- POST /api/consents --------------------------------------------------------------------------


def bearer(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_admin_api_records_an_sms_opt_out_in_e164(app: App) -> None:
    response = await app.client.post(
        "/api/consents",
        json={"channel": "sms", "address": "+86 138 0013 8000", "opted_out": True},
        headers=bearer(),
    )
    assert response.status_code == 200
    assert response.json() == {"channel": "sms", "address": PHONE, "opted_out": True}
    assert app.consents() == [("sms", PHONE, True, "admin-api")]


async def test_the_admin_api_can_opt_an_email_address_back_in(app: App) -> None:
    await app.client.post(f"/unsubscribe/{app.token(EMAIL)}", data=ONE_CLICK)
    response = await app.client.post(
        "/api/consents",
        json={"channel": "email", "address": "Wang@Example.com", "opted_out": False},
        headers=bearer(),
    )
    assert response.status_code == 200
    assert not app.opted_out("email", EMAIL)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ],
)
async def test_the_admin_api_without_the_right_bearer_token_is_401_and_changes_nothing(
    app: App, headers: dict[str, str]
) -> None:
    response = await app.client.post(
        "/api/consents",
        json={"channel": "sms", "address": PHONE, "opted_out": True},
        headers=headers,
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert app.consents() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"channel": "fax", "address": PHONE, "opted_out": True}, "channel"),
        ({"channel": "sms", "address": "13800138000", "opted_out": True}, "phone number"),
        ({"channel": "sms", "address": "12345", "opted_out": True}, "phone number"),
        ({"channel": "email", "address": "wang@example", "opted_out": True}, "email"),
        ({"channel": "email", "address": EMAIL, "opted_out": "yes"}, "opted_out"),
        ({"channel": "email", "opted_out": True}, "address"),
        ([], "object"),
    ],
)
async def test_the_admin_api_refuses_a_bad_body_with_400_and_the_reason(
    app: App, body: Any, reason: str
) -> None:
    response = await app.client.post("/api/consents", json=body, headers=bearer())
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert app.consents() == []


async def test_the_admin_api_does_not_exist_without_a_configured_admin_token(
    tmp_path: Path,
) -> None:
    client, app = await start(tmp_path, admin_token=None)
    async with client:
        response = await client.post(
            "/api/consents",
            json={"channel": "sms", "address": PHONE, "opted_out": True},
            headers=bearer(),
        )
    app.runtime.db.dispose()
    assert response.status_code == 404
    assert app.consents() == []


# --- at a real SMTP server -----------------------------------------------------------------------


async def test_the_email_at_the_smtp_server_has_list_unsubscribe_headers_that_work(
    tmp_path: Path, smtp_server: Any
) -> None:
    smtp = SMTPEmail(
        settings=SmtpSettings(
            host=smtp_server.host, port=smtp_server.port, sender="care@shop.example", starttls=False
        )
    )
    client, app = await start(tmp_path, email=smtp)
    async with client:
        insert(app.runtime.db, planned("k", due_at=NOW, channel="email", recipient=EMAIL), now=NOW)
        assert (await app.runtime.dispatcher.run_once()).sent == 1

        [message] = smtp_server.messages
        url = str(message["List-Unsubscribe"]).strip().strip("<>")  # unfolded
        assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        assert url == f"https://care.example.com/unsubscribe/{app.token(EMAIL)}"
        text = message.get_body(preferencelist=("plain",))
        assert text is not None and url in text.get_content()

        # What a mail client does with those headers (RFC 8058): POST the URL, no cookies.
        response = await client.post(url, data=ONE_CLICK)
    app.runtime.db.dispose()
    assert response.status_code == 200
    assert app.opted_out("email", EMAIL)
