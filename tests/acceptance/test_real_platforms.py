"""The platforms' own payloads (``tests/fixtures/real_platforms``), signed as each platform
signs, through ``carebot run`` to the Twilio-compatible server and an SMTP server.

The sample rules run as shipped, but for the ``shipped`` rule's wait for a tracking number
(30 minutes there, 3 seconds here, so the tests run in seconds) and for ``max_event_age``: the
platforms' payloads are dated years ago, and the sample rules would rightly call them stale.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from carebot.sources.signatures import hmac_sha256_base64
from carebot.testing.twilio_server import DEFAULT_AUTH_TOKEN, FakeTwilioServer

from .conftest import (
    REPO,
    DaemonProcess,
    rules_without_max_event_age,
    shipped_event,
    smtp_env,
    twilio_env,
    wait_until,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real_platforms"
SHOPIFY_SECRET = "shpss_real-platforms"
WOO_SECRET = "woo-real-platforms"
AFTERSHIP_SECRET = "aftership-real-platforms"
WAIT = 3  # seconds the shipped rule waits for a tracking number here
CJK = re.compile(r"[\u4e00-\u9fff]")


def _rules(tmp_path: Path) -> Path:
    """The sample rules, the shipped rule's wait cut to ``WAIT`` seconds, no ``max_event_age``."""
    rules = rules_without_max_event_age(tmp_path)
    shipping = rules / "shipping.yaml"
    text = shipping.read_text(encoding="utf-8")
    assert "wait_up_to: 30m" in text
    shipping.write_text(text.replace("wait_up_to: 30m", f"wait_up_to: {WAIT}s"), "utf-8")
    return rules


@pytest.fixture
def daemon(
    daemon_factory: Any, tmp_path: Path, twilio_server: FakeTwilioServer, smtp_server: Any
) -> DaemonProcess:
    started: DaemonProcess = daemon_factory(
        **twilio_env(twilio_server),
        **smtp_env(smtp_server),
        CAREBOT_RULES_DIR=str(_rules(tmp_path)),
        CAREBOT_WEBHOOKS__SHOPIFY_SECRET=SHOPIFY_SECRET,
        CAREBOT_WEBHOOKS__WOOCOMMERCE_SECRET=WOO_SECRET,
        CAREBOT_WEBHOOKS__AFTERSHIP_SECRET=AFTERSHIP_SECRET,
        CAREBOT_WEBHOOKS__WOOCOMMERCE_TIMEZONE="America/Los_Angeles",
        CAREBOT_CAPS__SMS_PER_DAY="50",
        CAREBOT_CAPS__EMAIL_PER_DAY="50",
        CAREBOT_WATCHERS__INTERVAL_MINUTES="600",
    )
    started.start(timeout=60)  # a loaded machine starts Python slowly
    return started


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _body(payload: str | dict[str, Any]) -> bytes:
    if isinstance(payload, str):
        return (FIXTURES / payload).read_bytes()  # the fixture byte for byte
    return json.dumps(payload, ensure_ascii=False).encode()


def shopify(daemon: DaemonProcess, topic: str, payload: str | dict[str, Any]) -> httpx.Response:
    body = _body(payload)
    event_id = f"{topic}-{hmac_sha256_base64('ids', body)[:16]}"
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


def woocommerce(daemon: DaemonProcess, topic: str, payload: str) -> httpx.Response:
    body = _body(payload)
    return httpx.post(
        f"{daemon.url}/webhooks/woocommerce",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Signature": hmac_sha256_base64(WOO_SECRET, body),
            "X-WC-Webhook-Delivery-ID": hmac_sha256_base64("ids", body)[:12],
        },
    )


def aftership(daemon: DaemonProcess, payload: str) -> httpx.Response:
    body = _body(payload)
    return httpx.post(
        f"{daemon.url}/webhooks/aftership",
        content=body,
        headers={
            "Content-Type": "application/json",
            "aftership-hmac-sha256": hmac_sha256_base64(AFTERSHIP_SECRET, body),
        },
    )


def twilio_inbound(daemon: DaemonProcess, sid: str, sender: str, body: str) -> httpx.Response:
    url = f"{daemon.url}/twilio/inbound"
    params = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body}
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, params)
    return httpx.post(
        url,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def sms_to(twilio: FakeTwilioServer, number: str) -> list[str]:
    return [r["Body"] for r in twilio.requests if r.get("To") == number]


def mail_to(smtp: Any, address: str) -> list[EmailMessage]:
    return [m for m in smtp.messages if address in str(m["To"])]


def text_of(message: EmailMessage) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]


def html_of(message: EmailMessage) -> str:
    return str(message.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]


def settled(check: Any, seconds: float) -> bool:
    """``check`` still holds after ``seconds`` (nothing more arrived that should not)."""
    time.sleep(seconds)
    return bool(check())


# --- Shopify ------------------------------------------------------------------------------------

BOB = "+16136120707"  # the customer's phone on Shopify's order #1001
UPS_URL = "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z001985YW99744790"


def test_shopify_order_1001_failed_and_cancelled_fulfillments_never_reach_the_customer(
    daemon: DaemonProcess, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    order = "shopify_order_1001_us_failed_fulfillment.json"
    assert shopify(daemon, "orders/create", order).status_code == 202
    # Its only fulfillment failed: orders/fulfilled has no parcel to announce.
    assert shopify(daemon, "orders/fulfilled", order).json()["status"] == "ignored"
    assert shopify(daemon, "fulfillments/create", "shopify_fulfillment_failure.json").is_success
    # Carrier news about the failed fulfillment is not news for the customer.
    news = shopify(daemon, "fulfillment_events/create", "shopify_fulfillment_event_in_transit.json")
    assert news.status_code == 202, news.text
    assert settled(lambda: twilio_server.requests == [], 1.0)

    # The live UPS parcel: one shipped text at once, in English (a US order with no locale),
    # with the number the customer knows, the carrier, the tracking number and link.
    assert shopify(daemon, "fulfillments/create", "shopify_fulfillment_success_ups.json").is_success
    assert wait_until(lambda: len(sms_to(twilio_server, BOB)) == 1, timeout=5)
    (shipped,) = sms_to(twilio_server, BOB)
    assert "#1001" in shipped and "450789469" not in shipped
    assert "UPS" in shipped and "1Z001985YW99744790" in shipped and UPS_URL in shipped
    assert "on its way" in shipped and not CJK.search(shipped)

    # A second fulfillment without tracking waits for a number, and is cancelled meanwhile.
    created = "shopify_fulfillment_cancelled_as_created_adapted.json"
    assert shopify(daemon, "fulfillments/create", created).status_code == 202
    assert shopify(daemon, "fulfillments/update", "shopify_fulfillment_cancelled.json").is_success
    assert settled(lambda: len(sms_to(twilio_server, BOB)) == 1, WAIT + 1.5)
    assert daemon.query(
        "select status from notifications where shipment_id = 'shopify-1069019879'"
    ) == [("cancelled",)]

    # A label printed elsewhere changes nothing; out for delivery and delivered do.
    printed = "shopify_fulfillment_event_label_printed.json"
    assert shopify(daemon, "fulfillment_events/create", printed).json()["status"] == "ignored"
    ofd = "shopify_fulfillment_event_out_for_delivery_adapted.json"
    assert shopify(daemon, "fulfillment_events/create", ofd).status_code == 202
    assert wait_until(lambda: len(sms_to(twilio_server, BOB)) == 2, timeout=5)
    arriving = sms_to(twilio_server, BOB)[1]
    assert "#1001" in arriving and "arriving today" in arriving and UPS_URL in arriving
    # Delivered: the failed and the cancelled fulfillments are no parcels to wait for.
    delivered = "shopify_fulfillment_event_delivered_adapted.json"
    assert shopify(daemon, "fulfillment_events/create", delivered).status_code == 202
    assert wait_until(lambda: len(sms_to(twilio_server, BOB)) >= 3, timeout=5)
    assert "#1001" in sms_to(twilio_server, BOB)[2]
    assert "has been delivered" in sms_to(twilio_server, BOB)[2]

    # The follow-up ("3d" after a delivery of July 2025) is due at once, and goes within its
    # 10:00-20:00 window in Ottawa: whether it is there yet depends on the wall clock, so it is
    # checked by rule, not counted with the parcel's notices.
    def follow_up() -> list[tuple[str]]:
        return daemon.query("select status from notifications where rule_id = 'follow-up'")

    assert wait_until(lambda: follow_up() in ([("scheduled",)], [("sent",)]), timeout=5)
    assert len(sms_to(twilio_server, BOB)) == 3 + (follow_up() == [("sent",)])
    assert daemon.query("select status from orders where id = '450789469'") == [("delivered",)]
    assert daemon.query(
        "select id, status from shipments where order_id = '450789469' order by id"
    ) == [
        ("shopify-1069019871", "delivered"),
        ("shopify-1069019879", "cancelled"),
        ("shopify-255858046", "cancelled"),
    ]
    every_text = "\n".join(r["Body"] for r in twilio_server.requests)
    assert "1Z1234512345123456" not in every_text  # the failed fulfillment's tracking number
    assert smtp_server.messages == []


def _fulfillment_of(name: str, *, order_id: int, fulfillment_id: int) -> dict[str, Any]:
    payload: dict[str, Any] = _load(name)
    payload.update(order_id=order_id, id=fulfillment_id)
    return payload


def test_canadian_and_brazilian_orders_hear_in_english_and_a_late_tracking_number_changes_nothing(
    daemon: DaemonProcess, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    assert shopify(daemon, "orders/create", "shopify_order_1002_ca.json").status_code == 202
    assert shopify(daemon, "orders/create", "shopify_order_1003_br_adapted.json").status_code == 202
    canada = _fulfillment_of("shopify_fulfillment_no_tracking.json", order_id=1073459981,
                             fulfillment_id=1069019875)  # fmt: skip
    brazil = _fulfillment_of("shopify_fulfillment_no_tracking.json", order_id=1073459980,
                             fulfillment_id=1069019876)  # fmt: skip
    assert shopify(daemon, "fulfillments/create", canada).status_code == 202
    assert shopify(daemon, "fulfillments/create", brazil).status_code == 202
    # Brazil: the tracking number arrives within the wait, and goes out with the notice.
    tracked = "shopify_fulfillment_tracking_added.json"
    brazil_tracked = _fulfillment_of(tracked, order_id=1073459980, fulfillment_id=1069019876)
    assert shopify(daemon, "fulfillments/update", brazil_tracked).status_code == 202
    # (The shipping phone 777-777-7777 is a valid number in Brazil: the notice is a text.)
    brazil_phone = "+557777777777"
    assert wait_until(lambda: len(sms_to(twilio_server, brazil_phone)) == 1, WAIT + 3)
    # Sent with the tracking number: released by the update, not by the end of the wait.
    (brazil_sms,) = sms_to(twilio_server, brazil_phone)
    assert "#1003" in brazil_sms and "on its way" in brazil_sms and "MS1562678" in brazil_sms
    assert "https://www.my-shipping-company.com?tracking_number=MS1562678" in brazil_sms
    assert not CJK.search(brazil_sms)
    # Canada: none arrives within the wait; the notice goes without one, in English.
    assert sms_to(twilio_server, "+18885551234") == []
    assert wait_until(lambda: len(sms_to(twilio_server, "+18885551234")) == 1, WAIT + 3)
    (canada_sms,) = sms_to(twilio_server, "+18885551234")
    assert "#1002" in canada_sms and "on its way" in canada_sms
    assert "Tracking" not in canada_sms and not CJK.search(canada_sms)
    # ...and the number that arrives after the wait sends nothing more (once per parcel).
    canada_tracked = _fulfillment_of(tracked, order_id=1073459981, fulfillment_id=1069019875)
    assert shopify(daemon, "fulfillments/update", canada_tracked).status_code == 202
    assert settled(lambda: len(sms_to(twilio_server, "+18885551234")) == 1, 1.5)
    assert len(sms_to(twilio_server, brazil_phone)) == 1
    assert smtp_server.messages == []


# --- WooCommerce --------------------------------------------------------------------------------

JOHN = "john.doe@example.com"  # every WooCommerce docs example orders as John Doe
USPS_URL = "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223197428490"


def test_woocommerce_legacy_v1_and_v3_orders_completed_reach_the_customer(
    daemon: DaemonProcess, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    legacy = woocommerce(daemon, "order.updated", "woocommerce_legacy_v3_order_completed.json")
    assert legacy.status_code == 202, legacy.text
    assert woocommerce(daemon, "order.updated", "woocommerce_v1_order_completed.json").is_success
    tracked = "woocommerce_v3_order_completed_shipment_tracking_adapted.json"
    assert woocommerce(daemon, "order.updated", tracked).status_code == 202
    # With Shipment Tracking: at once, with the merchant's provider name and link.
    assert wait_until(lambda: len(mail_to(smtp_server, JOHN)) == 1, timeout=5)
    (first,) = mail_to(smtp_server, JOHN)
    assert "727" in str(first["Subject"])
    assert "USPS Ground Advantage" in text_of(first) and "9400111899223197428490" in text_of(first)
    assert f'href="{USPS_URL}"' in html_of(first)
    # Without a tracking plugin (legacy 645, v1 154): the shipped notice after the wait.
    assert wait_until(lambda: len(mail_to(smtp_server, JOHN)) == 3, timeout=WAIT + 5)
    subjects = sorted(str(m["Subject"]) for m in mail_to(smtp_server, JOHN))
    assert [("645" in s, "154" in s, "727" in s) for s in subjects].count((True, False, False)) == 1
    assert [("154" in s) for s in subjects].count(True) == 1
    for message in mail_to(smtp_server, JOHN):
        assert "on its way" in str(message["Subject"]) and not CJK.search(text_of(message))
    # v1 dates have no offset: they are the shop's local time (America/Los_Angeles here).
    assert daemon.query(
        "select occurred_at from events where source = 'woocommerce' and order_id = '154'"
    ) == [("2016-05-31 05:46:16.000000",)]
    assert daemon.query("select number from orders order by id") == [
        ("154",),
        ("645",),
        ("727",),
    ]

    # AfterShip's update of the same parcel keeps the merchant's carrier name and link.
    update = "aftership_usps_out_for_delivery_known_shipment_adapted.json"
    assert aftership(daemon, update).status_code == 202
    assert wait_until(lambda: len(mail_to(smtp_server, JOHN)) == 4, timeout=5)
    arriving = mail_to(smtp_server, JOHN)[3]
    assert "727" in str(arriving["Subject"]) and "arrives today" in str(arriving["Subject"])
    assert "USPS Ground Advantage" in text_of(arriving) and USPS_URL in text_of(arriving)
    assert daemon.query("select id, carrier from shipments where order_id = '727'") == [
        ("woocommerce-727", "USPS Ground Advantage")
    ]
    assert twilio_server.requests == []


# --- AfterShip ----------------------------------------------------------------------------------

LUCIA = "+34612345678"


def test_aftership_creates_the_unknown_order_ignores_old_news_and_ends_quietly_on_expiry(
    daemon: DaemonProcess, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    first = aftership(daemon, "aftership_postnl_intransit_unknown_order_adapted.json")
    assert first.status_code == 202, first.text
    assert daemon.query("select number, customer_id from orders") == [
        ("#2001", "email:lucia.garcia@example.es")
    ]
    assert aftership(daemon, "aftership_postnl_out_for_delivery_adapted.json").status_code == 202
    assert wait_until(lambda: len(sms_to(twilio_server, LUCIA)) == 1, timeout=5)
    (arriving,) = sms_to(twilio_server, LUCIA)
    # AfterShip's name for the slug, its courier link, the customer's order number, English
    # (shipped to Spain, no locale).
    assert "PostNL International 3S" in arriving and "postnl-3s" not in arriving
    assert "http://www.postnl.nl/voorthuis/" in arriving and "#2001" in arriving
    assert "Lucía García" in arriving and not CJK.search(arriving)

    # An older update delivered late changes nothing: status, expected day, no message.
    older = aftership(daemon, "aftership_postnl_older_update_out_of_order_adapted.json")
    assert older.status_code == 202
    shipment = "select status, expected_delivery, carrier from shipments"
    assert daemon.query(shipment) == [("out_for_delivery", "2021-03-26", "PostNL International 3S")]
    # Expired: watching ends, and the customer is not told about a "problem".
    assert aftership(daemon, "aftership_postnl_expired_adapted.json").status_code == 202
    assert daemon.query(shipment) == [("expired", "2021-03-26", "PostNL International 3S")]
    assert settled(lambda: len(sms_to(twilio_server, LUCIA)) == 1, 1.5)

    # A tracking naming a known order joins it and leaves its customer as the shop said.
    assert shopify(daemon, "orders/create", "shopify_order_1002_ca.json").status_code == 202
    assert aftership(daemon, "aftership_china_post_known_order_adapted.json").status_code == 202
    assert daemon.query(
        "select order_id, carrier from shipments where id = 'aftership-china-post-19260817'"
    ) == [("1073459981", "China Post")]
    assert daemon.query(
        "select c.email from orders o join customers c on c.id = o.customer_id"
        " where o.id = '1073459981'"
    ) == [("jane@example.com",)]
    assert smtp_server.messages == []


# --- inbound replies ----------------------------------------------------------------------------


def _consent(daemon: DaemonProcess, address: str) -> list[tuple[Any, ...]]:
    return daemon.query("select opted_out from consents where address = ?", address)


def test_every_inbound_route_takes_the_one_consent_path_and_a_replay_flips_nothing(
    daemon: DaemonProcess, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    start_sid, stop_sid = "SM" + "a" * 32, "SM" + "b" * 32
    assert twilio_inbound(daemon, start_sid, BOB, "START").status_code == 200
    assert _consent(daemon, BOB) == [(0,)]
    assert twilio_inbound(daemon, stop_sid, BOB, "Stop").status_code == 200
    assert _consent(daemon, BOB) == [(1,)]
    # The same signed START again (a replay): stored once, consent unchanged.
    assert twilio_inbound(daemon, start_sid, BOB, "START").status_code == 200
    assert _consent(daemon, BOB) == [(1,)]
    assert daemon.query("select count(*) from events where source = 'twilio'") == [(2,)]

    # A canonical message.received from another SMS gateway: 退订 stops texts too.
    reply = {
        "id": "gateway-msg-77",
        "type": "message.received",
        "occurred_at": "2026-12-01T10:00:00+08:00",
        "message": {"channel": "sms", "from": "+8613800138000", "body": " 退订 "},
    }
    assert daemon.post(reply).status_code == 202
    assert _consent(daemon, "+8613800138000") == [(1,)]
    assert daemon.query("select count(*) from feedback") == [(0,)]
    # So a shipped notice to that customer goes by email, not SMS.
    assert daemon.post(shipped_event(88)).status_code == 202
    assert wait_until(lambda: len(mail_to(smtp_server, "wang@example.com")) == 1, timeout=5)
    assert sms_to(twilio_server, "+8613800138000") == []


def test_simulate_applies_stop_before_the_shipped_text(tmp_path: Path) -> None:
    shipped = shipped_event(5, occurred_at=None)
    shipped["occurred_at"] = "2026-11-20T10:00:00+08:00"
    stop = {
        "id": "sms-in-1",
        "type": "message.received",
        "occurred_at": "2026-11-20T09:00:00+08:00",
        "message": {"channel": "sms", "from": "+8613800138000", "body": "STOP"},
    }
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(json.dumps(e, ensure_ascii=False) for e in (stop, shipped)) + "\n", "utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env |= {
        "CAREBOT_RULES_DIR": str(REPO / "rules"),
        "CAREBOT_TEMPLATES_DIR": str(REPO / "message_templates"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "carebot", "simulate", str(events), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    shipped_records = [r for r in records if r["rule"] == "shipped"]
    assert shipped_records, records
    assert all(r["to"] != "+8613800138000" or r["status"] != "sent" for r in shipped_records)
    assert [r["to"] for r in shipped_records if r["status"] == "sent"] == ["wang@example.com"]
