"""Platform payloads into the running daemon, messages out at real providers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from carebot.sources.signatures import hmac_sha256_base64
from carebot.testing.twilio_server import FakeTwilioServer

from .conftest import (
    rules_without_max_event_age,
    shipped_event,
    smtp_env,
    twilio_env,
    wait_until,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"
SHOPIFY_SECRET = "shopify-app-secret"
AFTERSHIP_SECRET = "aftership-secret"
WOO_SECRET = "woo-secret"


def _env(twilio: FakeTwilioServer, smtp: Any) -> dict[str, str]:
    return {
        **twilio_env(twilio),
        **smtp_env(smtp),
        "CAREBOT_WEBHOOKS__SHOPIFY_SECRET": SHOPIFY_SECRET,
        "CAREBOT_WEBHOOKS__AFTERSHIP_SECRET": AFTERSHIP_SECRET,
        "CAREBOT_WEBHOOKS__WOOCOMMERCE_SECRET": WOO_SECRET,
    }


def _shopify(daemon: Any, topic: str, fixture: str, event_id: str) -> httpx.Response:
    body = (FIXTURES / fixture).read_bytes()  # the published sample, byte for byte
    return httpx.post(
        f"{daemon.url}/webhooks/shopify",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": hmac_sha256_base64(SHOPIFY_SECRET, body),
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Webhook-Id": f"wh-{event_id}",
        },
    )


def test_shopify_samples_produce_the_shipped_email_at_the_smtp_server(
    daemon_factory: Any, twilio_server: FakeTwilioServer, smtp_server: Any, tmp_path: Path
) -> None:
    # The vendor's samples are dated 2021: the sample rules' max_event_age would rightly call
    # them stale, so this test (about the mapping) runs the rules without it.
    rules = rules_without_max_event_age(tmp_path)
    daemon = daemon_factory(CAREBOT_RULES_DIR=str(rules), **_env(twilio_server, smtp_server))
    daemon.start()
    assert _shopify(daemon, "orders/create", "shopify_orders_create.json", "e-1").status_code == 202
    fulfilled = _shopify(daemon, "fulfillments/create", "shopify_fulfillments_create.json", "e-2")
    assert fulfilled.status_code == 202, fulfilled.text
    # The sample's phone (555-555-SHIP) is no phone number: the notice goes by email.
    assert wait_until(lambda: len(smtp_server.messages) == 1, timeout=5)
    message = smtp_server.messages[0]
    assert "1z827wk74630" in message.get_body(preferencelist=("plain",)).get_content()
    assert twilio_server.requests == []
    # A wrong signature stores nothing.
    wrong = httpx.post(
        f"{daemon.url}/webhooks/shopify",
        content=b"{}",
        headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "AAAA"},
    )
    assert wrong.status_code == 401
    assert daemon.query("select count(*) from events where source = 'shopify'") == [(2,)]


def test_a_delivery_receipt_from_twilio_shows_in_carebot_status(
    daemon_factory: Any, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    daemon = daemon_factory(**_env(twilio_server, smtp_server))
    daemon.start()
    assert daemon.post(shipped_event(5)).status_code == 202
    assert twilio_server.wait_for(1, timeout=3)
    callback = urlsplit(twilio_server.requests[0]["StatusCallback"])
    notification = parse_qs(callback.query)["notification"][0]
    url = f"{daemon.url}/twilio/status?notification={notification}"
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered", "To": "+8613800138000"}
    signature = RequestValidator("test-token").compute_signature(url, params)
    response = httpx.post(
        url,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status_code == 200, response.text
    status = subprocess.run(
        [sys.executable, "-m", "carebot", "status", "--json"],
        capture_output=True,
        text=True,
        env=daemon.env,
        cwd=daemon.tmp_path,
        timeout=60,
        check=True,
    )
    summary = json.loads(status.stdout)
    assert summary["by_status"] == {"delivered": 1}
    assert summary["by_rule"]["shipped"] == {"delivered": 1}


def test_woocommerce_and_aftership_samples_are_verified_and_stored_once(
    daemon_factory: Any, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    daemon = daemon_factory(**_env(twilio_server, smtp_server))
    daemon.start()
    woo = (FIXTURES / "woocommerce_order_created.json").read_bytes()
    woo_headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": hmac_sha256_base64(WOO_SECRET, woo),
        "X-WC-Webhook-Delivery-ID": "d-1",
    }
    url = f"{daemon.url}/webhooks/woocommerce"
    assert httpx.post(url, content=woo, headers=woo_headers).status_code == 202
    assert httpx.post(url, content=woo, headers=woo_headers).status_code == 200  # repeat
    ping = httpx.post(
        url, content=b"webhook_id=7", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert ping.status_code == 200
    tracking = (FIXTURES / "aftership_tracking_update_intransit.json").read_bytes()
    aftership = httpx.post(
        f"{daemon.url}/webhooks/aftership",
        content=tracking,
        headers={
            "Content-Type": "application/json",
            "aftership-hmac-sha256": hmac_sha256_base64(AFTERSHIP_SECRET, tracking),
        },
    )
    assert aftership.status_code == 202, aftership.text
    sources = daemon.query("select source, type from events order by id")
    # The sample order is "processing": paid, not yet shipped.
    assert sources == [("woocommerce", "order.paid"), ("aftership", "shipment.updated")]
