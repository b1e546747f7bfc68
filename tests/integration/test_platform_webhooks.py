"""Platform webhooks end to end: signed sample payloads posted to the app, through the real
pipeline on a SQLite file, to the capturing channels."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from support.core import MESSAGE_TEMPLATES, RULES, migrated_database
from twilio.request_validator import RequestValidator

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings, TwilioSettings, WebhookSettings
from carebot.sources.signatures import hmac_sha256_base64
from carebot.store.models import (
    ConsentRow,
    EventRow,
    NotificationRow,
    RejectedPayloadRow,
    ShipmentRow,
)
from carebot.web.app import create_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
PUBLIC_URL = "https://care.example.com"
SHOPIFY_SECRET = "shpss_test"
WOO_SECRET = "woo-secret"
AFTERSHIP_SECRET = "as-secret"
TWILIO_TOKEN = "twilio-token"
PHONE = "+8613800138000"


@dataclass
class App:
    client: httpx.AsyncClient
    runtime: Runtime
    channels: dict[ChannelKind, MemoryChannel]

    def count(self, model: Any, *where: Any) -> int:
        with self.runtime.db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def notifications(self) -> list[NotificationRow]:
        with self.runtime.db.transaction() as session:
            return list(session.scalars(select(NotificationRow).order_by(NotificationRow.id)))


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    db_path = tmp_path / "carebot.db"
    # The vendors' sample payloads are dated years ago: the sample rules' max_event_age would
    # rightly call them stale, so these tests (about the mapping) run the rules without it.
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    for path in rules.glob("*.yaml"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not line.lstrip().startswith("max_event_age:")]
        path.write_text("".join(kept), encoding="utf-8")
    settings = Settings(
        database_url=f"sqlite:///{db_path}",
        rules_dir=rules,
        templates_dir=MESSAGE_TEMPLATES,
        quiet_hours="none",
        default_timezone="Asia/Shanghai",
        default_locale="zh-CN",
        public_url=PUBLIC_URL,
        shop_name="测试小店",
        webhooks=WebhookSettings(
            shopify_secret=SHOPIFY_SECRET,
            woocommerce_secret=WOO_SECRET,
            aftership_secret=AFTERSHIP_SECRET,
        ),
        twilio=TwilioSettings(auth_token=TWILIO_TOKEN),
    )
    db = migrated_database(db_path)
    channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
    runtime = build_runtime(
        settings, clock=VirtualClock(NOW), channels=channels, db=db, inline_db=True
    )
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield App(client=client, runtime=runtime, channels=channels)
    db.dispose()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


async def post_shopify(
    app: App, topic: str, payload: Any, *, event_id: str, secret: str = SHOPIFY_SECRET
) -> httpx.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": hmac_sha256_base64(secret, body),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": f"wh-{event_id}",
    }
    return await app.client.post("/webhooks/shopify", content=body, headers=headers)


def fulfillment(
    *, phone: str, fulfillment_id: int = 123456, tracking: str = "1z827wk74630"
) -> dict[str, Any]:
    """The published fulfillment sample with another phone (and parcel, when given)."""
    payload: dict[str, Any] = copy.deepcopy(fixture("shopify_fulfillments_create.json"))
    payload["destination"]["phone"] = phone
    payload["id"] = fulfillment_id
    payload["tracking_number"] = tracking
    payload["tracking_numbers"] = [tracking]
    return payload


async def post_twilio(
    app: App, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN
) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
    return await app.client.post(
        path,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def test_shopify_fulfillment_sends_the_shipped_email_when_the_phone_is_not_valid(
    app: App,
) -> None:
    body = (FIXTURES / "shopify_fulfillments_create.json").read_bytes()  # the exact sample bytes
    response = await app.client.post(
        "/webhooks/shopify",
        content=body,
        headers={
            "X-Shopify-Topic": "fulfillments/create",
            "X-Shopify-Hmac-Sha256": hmac_sha256_base64(SHOPIFY_SECRET, body),
            "X-Shopify-Event-Id": "e-1",
        },
    )
    assert response.status_code == 202, response.text
    await app.runtime.dispatcher.run_once()
    assert app.channels[ChannelKind.SMS].sent == []
    (mail,) = app.channels[ChannelKind.EMAIL].sent
    assert mail.to == "jon@example.com"
    assert "1z827wk74630" in mail.body
    assert "820982911946154508" in mail.body


async def test_shopify_order_then_fulfillment_sends_one_sms_with_the_known_customer(
    app: App,
) -> None:
    order = fixture("shopify_orders_create.json")
    order["customer"]["phone"] = PHONE
    order["shipping_address"]["country_code"] = "CN"
    assert (await post_shopify(app, "orders/create", order, event_id="e-1")).status_code == 202
    payload = fixture("shopify_fulfillments_create.json")
    payload["destination"]["phone"] = None
    assert (
        await post_shopify(app, "fulfillments/create", payload, event_id="e-2")
    ).status_code == 202
    await app.runtime.dispatcher.run_once()
    (sms,) = app.channels[ChannelKind.SMS].sent
    assert sms.to == PHONE
    assert "1z827wk74630" in sms.body


@pytest.mark.parametrize(
    "route", ["/webhooks/shopify", "/webhooks/woocommerce", "/webhooks/aftership"]
)
@pytest.mark.parametrize("signature", [None, "d3Jvbmc=", "wrong-secret"])
async def test_a_wrong_or_missing_signature_is_401_and_nothing_is_stored(
    app: App, route: str, signature: str | None
) -> None:
    body = json.dumps(fulfillment(phone=PHONE)).encode()
    headers = {
        "X-Shopify-Topic": "fulfillments/create",
        "X-WC-Webhook-Topic": "order.updated",
    }
    if signature == "wrong-secret":
        signature = hmac_sha256_base64("not-the-secret", body)
    if signature is not None:
        for name in ("X-Shopify-Hmac-Sha256", "X-WC-Webhook-Signature", "aftership-hmac-sha256"):
            headers[name] = signature
    response = await app.client.post(route, content=body, headers=headers)
    assert response.status_code == 401
    assert app.count(EventRow) == 0
    assert app.count(RejectedPayloadRow) == 0
    assert app.count(NotificationRow) == 0


async def test_a_route_without_a_configured_secret_refuses_everything(app: App) -> None:
    app.runtime.settings.webhooks.shopify_secret = None
    response = await post_shopify(
        app, "orders/create", fixture("shopify_orders_create.json"), event_id="e"
    )
    assert response.status_code == 401
    assert app.count(EventRow) == 0


async def test_the_same_delivery_twice_is_stored_once(app: App) -> None:
    payload = fulfillment(phone=PHONE)
    first = await post_shopify(app, "fulfillments/create", payload, event_id="e-1")
    second = await post_shopify(app, "fulfillments/create", payload, event_id="e-1")
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "duplicate"
    assert app.count(EventRow) == 1
    assert app.count(NotificationRow) == 1


async def test_an_authentic_but_unmappable_body_is_400_and_kept(app: App) -> None:
    response = await post_shopify(app, "fulfillments/create", {"id": 5}, event_id="e-1")
    assert response.status_code == 400
    assert "order_id" in response.json()["error"]
    assert app.count(RejectedPayloadRow, RejectedPayloadRow.source == "shopify") == 1
    assert app.count(EventRow) == 0


async def test_woocommerce_ping_is_200_and_a_signed_completed_order_is_stored(app: App) -> None:
    ping = await app.client.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ping.status_code == 200
    assert app.count(EventRow) == 0
    # WooCommerce sends compact JSON with PHP escaping: the signature is over those bytes.
    body = json.dumps(fixture("woocommerce_order_updated.json"), separators=(",", ":"))
    raw = body.replace("/", "\\/").encode()
    headers = {
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Signature": hmac_sha256_base64(WOO_SECRET, raw),
        "X-WC-Webhook-Delivery-ID": "d-1",
    }
    first = await app.client.post("/webhooks/woocommerce", content=raw, headers=headers)
    again = await app.client.post(
        "/webhooks/woocommerce", content=raw, headers={**headers, "X-WC-Webhook-Delivery-ID": "d-2"}
    )
    assert (first.status_code, again.status_code) == (202, 200)
    assert (
        app.count(EventRow, EventRow.source == "woocommerce", EventRow.type == "order.shipped") == 1
    )


async def test_aftership_update_joins_the_shopify_shipment_by_tracking_number(app: App) -> None:
    assert (
        await post_shopify(app, "fulfillments/create", fulfillment(phone=PHONE), event_id="e-1")
    ).status_code == 202
    update = fixture("aftership_tracking_update_delivered_min.json")
    update["msg"].update(tracking_number="1Z827WK74630", slug="ups")
    body = json.dumps(update).encode()
    response = await app.client.post(
        "/webhooks/aftership",
        content=body,
        headers={"aftership-hmac-sha256": hmac_sha256_base64(AFTERSHIP_SECRET, body)},
    )
    assert response.status_code == 202, response.text
    with app.runtime.db.transaction() as session:
        shipments = list(session.scalars(select(ShipmentRow)))
        assert [(s.id, s.order_id, s.status) for s in shipments] == [
            ("shopify-123456", "820982911946154508", "delivered")
        ]
    assert app.count(EventRow, EventRow.type == "order.delivered") == 1


async def test_aftership_update_before_the_order_is_joined_when_the_fulfillment_arrives(
    app: App,
) -> None:
    update = fixture("aftership_tracking_update_intransit.json")
    update["msg"].update(tracking_number="1z827wk74630", slug="ups")
    body = json.dumps(update).encode()
    response = await app.client.post(
        "/webhooks/aftership",
        content=body,
        headers={"aftership-hmac-sha256": hmac_sha256_base64(AFTERSHIP_SECRET, body)},
    )
    assert response.status_code == 202
    assert (
        await post_shopify(app, "fulfillments/create", fulfillment(phone=PHONE), event_id="e-1")
    ).status_code == 202
    with app.runtime.db.transaction() as session:
        shipments = [(s.id, s.order_id) for s in session.scalars(select(ShipmentRow))]
    assert shipments == [("aftership-ups-1Z827WK74630", "820982911946154508")]
    await app.runtime.dispatcher.run_once()
    assert [m.to for m in app.channels[ChannelKind.SMS].sent] == [PHONE]


async def test_after_stop_no_sms_goes_but_email_does_and_start_restores_sms(app: App) -> None:
    stop = await post_twilio(
        app, "/twilio/inbound", {"From": PHONE, "Body": " 退订 ", "MessageSid": "SM1"}
    )
    assert stop.status_code == 200
    assert stop.headers["content-type"].startswith("application/xml")
    assert app.count(ConsentRow, ConsentRow.address == PHONE, ConsentRow.opted_out.is_(True)) == 1

    await post_shopify(app, "fulfillments/create", fulfillment(phone=PHONE), event_id="e-1")
    await app.runtime.dispatcher.run_once()
    assert app.channels[ChannelKind.SMS].sent == []
    # The rule's channel is `preferred`: with SMS refused, the email address is used.
    assert [m.to for m in app.channels[ChannelKind.EMAIL].sent] == ["jon@example.com"]
    assert [(n.channel, n.status) for n in app.notifications()] == [("email", "sent")]

    start = await post_twilio(
        app, "/twilio/inbound", {"From": PHONE, "Body": "start", "MessageSid": "SM2"}
    )
    assert start.status_code == 200
    await post_shopify(
        app,
        "fulfillments/create",
        fulfillment(phone=PHONE, fulfillment_id=777, tracking="1z0000000002"),
        event_id="e-2",
    )
    await app.runtime.dispatcher.run_once()
    assert [m.to for m in app.channels[ChannelKind.SMS].sent] == [PHONE]


async def test_an_sms_planned_before_stop_is_suppressed_at_send_time(app: App) -> None:
    await post_shopify(app, "fulfillments/create", fulfillment(phone=PHONE), event_id="e-1")
    assert [(n.channel, n.status) for n in app.notifications()] == [("sms", "scheduled")]
    await post_twilio(app, "/twilio/inbound", {"From": PHONE, "Body": "STOP", "MessageSid": "SM1"})
    await app.runtime.dispatcher.run_once()
    assert app.channels[ChannelKind.SMS].sent == []
    # The rule's channel is `preferred`: the refused SMS falls back to the email address.
    row, fallback = app.notifications()
    assert row.status == "suppressed" and "opted out" in (row.reason or "")
    assert (fallback.channel, fallback.recipient) == ("email", "jon@example.com")


async def test_help_answers_twiml_and_other_replies_become_events(app: App) -> None:
    help_reply = await post_twilio(
        app, "/twilio/inbound", {"From": PHONE, "Body": "HELP", "MessageSid": "SM1"}
    )
    assert help_reply.status_code == 200
    assert "<Message>测试小店" in help_reply.text
    other = await post_twilio(
        app, "/twilio/inbound", {"From": PHONE, "Body": "谢谢", "MessageSid": "SM2"}
    )
    assert other.text.endswith("<Response/>")
    assert (
        app.count(EventRow, EventRow.type == "message.received", EventRow.event_id == "twilio:SM2")
        == 1
    )


async def test_twilio_routes_refuse_a_wrong_signature_with_403(app: App) -> None:
    params = {"From": PHONE, "Body": "STOP", "MessageSid": "SM1"}
    inbound = await post_twilio(app, "/twilio/inbound", params, token="wrong")
    status = await post_twilio(
        app, "/twilio/status?notification=1", {"MessageStatus": "delivered"}, token="wrong"
    )
    assert (inbound.status_code, status.status_code) == (403, 403)
    assert app.count(ConsentRow) == 0


async def test_status_callbacks_move_a_sent_sms_to_delivered_and_21610_opts_out(app: App) -> None:
    await post_shopify(app, "fulfillments/create", fulfillment(phone=PHONE), event_id="e-1")
    await app.runtime.dispatcher.run_once()
    (sent,) = app.notifications()
    assert sent.status == "sent"
    delivered = await post_twilio(
        app,
        f"/twilio/status?notification={sent.id}",
        {"MessageStatus": "delivered", "MessageSid": "SMx", "To": PHONE},
    )
    assert delivered.status_code == 200
    assert [n.status for n in app.notifications()] == ["delivered"]

    failed = await post_twilio(
        app,
        f"/twilio/status?notification={sent.id}",
        {"MessageStatus": "failed", "ErrorCode": "21610", "MessageSid": "SMx", "To": PHONE},
    )
    assert failed.status_code == 200
    assert app.count(ConsentRow, ConsentRow.address == PHONE, ConsentRow.opted_out.is_(True)) == 1


async def _post_aftership(app: App, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await app.client.post(
        "/webhooks/aftership",
        content=body,
        headers={"aftership-hmac-sha256": hmac_sha256_base64(AFTERSHIP_SECRET, body)},
    )


async def test_a_shop_parcel_never_merges_into_another_untracked_parcel_but_aftership_joins_it(
    app: App,
) -> None:
    untracked = fulfillment(phone=PHONE, fulfillment_id=1)
    untracked.update(tracking_number=None, tracking_numbers=[], tracking_url=None)
    assert (await post_shopify(app, "fulfillments/create", untracked, event_id="e-1")).is_success
    tracked = fulfillment(phone=PHONE, fulfillment_id=2, tracking="1ZSECOND")
    assert (await post_shopify(app, "fulfillments/create", tracked, event_id="e-2")).is_success
    # AfterShip's tracking of the order (by its id) is the parcel announced without tracking.
    update = fixture("aftership_tracking_update_intransit.json")
    update["msg"].update(
        tracking_number="9400TRACKED", slug="usps", order_id=str(untracked["order_id"])
    )
    assert (await _post_aftership(app, update)).status_code == 202
    with app.runtime.db.transaction() as session:
        rows = session.execute(
            select(ShipmentRow.id, ShipmentRow.tracking_number, ShipmentRow.carrier).order_by(
                ShipmentRow.id
            )
        ).all()
    # (The shop named the carrier of its parcel: that name stays.)
    assert [tuple(r) for r in rows] == [
        ("shopify-1", "9400TRACKED", "UPS"),
        ("shopify-2", "1ZSECOND", "UPS"),
    ]
