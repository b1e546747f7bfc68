"""Mapping the platforms' published sample payloads to canonical events, and their signatures."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from carebot.events import EventType, ShipmentStatus
from carebot.exceptions import SourceError
from carebot.notifications import NotificationStatus
from carebot.sources import aftership, shopify, twilio, woocommerce
from carebot.sources.signatures import hmac_sha256_base64, verify_hmac_sha256_base64

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platforms"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def form(name: str) -> dict[str, str]:
    return dict(parse_qsl((FIXTURES / name).read_text().strip(), keep_blank_values=True))


# --- signatures --------------------------------------------------------------------------------


def test_woocommerce_known_vector_verifies() -> None:
    expected = "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="
    assert hmac_sha256_base64("", b"secret") == expected
    assert verify_hmac_sha256_base64("", b"secret", expected)


def test_a_wrong_missing_or_empty_hmac_signature_is_refused() -> None:
    good = hmac_sha256_base64("s3cret", b'{"a":1}')
    assert verify_hmac_sha256_base64("s3cret", b'{"a":1}', good)
    assert not verify_hmac_sha256_base64("s3cret", b'{"a": 1}', good)  # other bytes
    assert not verify_hmac_sha256_base64("other", b'{"a":1}', good)
    assert not verify_hmac_sha256_base64("s3cret", b'{"a":1}', None)
    assert not verify_hmac_sha256_base64("s3cret", b'{"a":1}', "")
    assert not verify_hmac_sha256_base64("s3cret", b'{"a":1}', "ünïcode")


def test_twilio_known_answer_vector_verifies_and_a_changed_param_does_not() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.verify_signature("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio.verify_signature(
        "12345", url, {**params, "Digits": "9"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    assert not twilio.verify_signature("12345", url, params, None)


# --- Shopify -----------------------------------------------------------------------------------


def shopify_headers(topic: str, event_id: str = "evt-1") -> dict[str, str]:
    return {"x-shopify-topic": topic, "x-shopify-event-id": event_id}


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("orders/create", EventType.ORDER_PLACED),
        ("orders/paid", EventType.ORDER_PAID),
        ("orders/fulfilled", EventType.ORDER_SHIPPED),
        ("orders/cancelled", EventType.ORDER_CANCELLED),
    ],
)
def test_shopify_order_topics_are_routed_on_the_header_not_the_body(
    topic: str, expected: EventType
) -> None:
    (event,) = shopify.map_webhook(shopify_headers(topic), load("shopify_orders_create.json"))
    assert event.type == expected
    assert event.id == f"shopify:evt-1:{topic}"
    assert event.order is not None
    assert event.order.id == "820982911946154508"  # above 2**53, kept exact as a string
    assert event.order.currency == "USD"
    assert str(event.order.total) == "404.95"
    assert event.order.customer is not None
    assert event.order.customer.id == "115310627314723954"
    assert event.order.customer.email == "john@example.com"
    assert event.order.customer.phone == "555-555-SHIP"
    assert event.order.shipping_address is not None
    assert event.order.shipping_address.country == "US"
    assert event.order.items is not None and event.order.items[0].sku == "SKU2006-001"


def test_shopify_fulfillment_create_is_the_shipped_event_with_its_tracking() -> None:
    (event,) = shopify.map_webhook(
        shopify_headers("fulfillments/create"), load("shopify_fulfillments_create.json")
    )
    assert event.type == EventType.ORDER_SHIPPED
    assert event.order_id == "820982911946154508"
    assert event.shipment is not None
    assert event.shipment.id == "shopify-123456"
    assert (event.shipment.carrier, event.shipment.tracking_number) == ("UPS", "1z827wk74630")
    assert event.order is not None and event.order.customer is not None
    assert event.order.customer.email == "jon@example.com"
    assert event.order.customer.phone == "555-555-SHIP"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in_transit", ShipmentStatus.IN_TRANSIT),
        ("out_for_delivery", ShipmentStatus.OUT_FOR_DELIVERY),
        ("attempted_delivery", ShipmentStatus.FAILED_ATTEMPT),
        ("ready_for_pickup", ShipmentStatus.AVAILABLE_FOR_PICKUP),
        ("delivered", ShipmentStatus.DELIVERED),
        ("failure", ShipmentStatus.EXCEPTION),
        ("confirmed", None),
        (None, None),
    ],
)
def test_shopify_fulfillment_update_maps_shipment_status(
    raw: str | None, expected: ShipmentStatus | None
) -> None:
    payload = {**load("shopify_fulfillments_update.json"), "shipment_status": raw}
    (event,) = shopify.map_webhook(shopify_headers("fulfillments/update"), payload)
    assert event.type == EventType.SHIPMENT_UPDATED
    assert event.shipment is not None and event.shipment.status == expected


def test_shopify_refund_is_order_refunded() -> None:
    (event,) = shopify.map_webhook(
        shopify_headers("refunds/create"), load("shopify_refunds_create.json")
    )
    assert (event.type, event.order_id) == (EventType.ORDER_REFUNDED, "820982911946154508")


def test_shopify_without_event_id_falls_back_to_the_webhook_id() -> None:
    headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Webhook-Id": "wh-9"}
    (event,) = shopify.map_webhook(headers, load("shopify_orders_create.json"))
    assert event.id == "shopify:wh-9:orders/paid"
    assert shopify.delivery_id(headers) == "wh-9"


def test_shopify_unknown_topic_or_non_object_body_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="unsupported Shopify topic"):
        shopify.map_webhook(shopify_headers("products/update"), {})
    with pytest.raises(SourceError, match="X-Shopify-Topic"):
        shopify.map_webhook({}, {})
    with pytest.raises(SourceError, match="not a JSON object"):
        shopify.map_webhook(shopify_headers("orders/create"), [1, 2])
    with pytest.raises(SourceError, match="order_id"):
        shopify.map_webhook(shopify_headers("fulfillments/create"), {"id": 1})


# --- WooCommerce -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", EventType.ORDER_PLACED),
        ("processing", EventType.ORDER_PAID),
        ("completed", EventType.ORDER_SHIPPED),
        ("cancelled", EventType.ORDER_CANCELLED),
        ("refunded", EventType.ORDER_REFUNDED),
    ],
)
def test_woocommerce_order_status_picks_the_event(status: str, expected: EventType) -> None:
    payload = {**load("woocommerce_order_updated.json"), "status": status}
    (event,) = woocommerce.map_webhook({"X-WC-Webhook-Topic": "order.updated"}, payload)
    assert event.type == expected
    assert event.order is not None and event.order.id == "727"
    assert event.occurred_at == datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC)
    assert event.order.customer is not None
    assert event.order.customer.phone == "(555) 555-5555"
    assert event.order.customer.email == "john.doe@example.com"
    assert event.order.customer.id is None  # customer_id 0: a guest
    assert event.order.shipping_address is not None
    assert event.order.shipping_address.country == "US"


def test_woocommerce_created_sample_is_paid_and_failed_is_ignored() -> None:
    (event,) = woocommerce.map_webhook(
        {"x-wc-webhook-topic": "order.created"}, load("woocommerce_order_created.json")
    )
    assert event.type == EventType.ORDER_PAID
    failed = {**load("woocommerce_order_created.json"), "status": "failed"}
    assert woocommerce.map_webhook({"x-wc-webhook-topic": "order.created"}, failed) == []
    assert woocommerce.map_webhook({"x-wc-webhook-topic": "product.updated"}, {}) == []


def test_woocommerce_completed_carries_shipment_tracking_meta() -> None:
    payload = {
        **load("woocommerce_order_updated.json"),
        "meta_data": [
            {
                "key": "_wc_shipment_tracking_items",
                "value": [
                    {
                        "tracking_provider": "sf-express",
                        "tracking_number": "SF1",
                        "tracking_id": "t1",
                    }
                ],
            }
        ],
    }
    (event,) = woocommerce.map_webhook({"x-wc-webhook-topic": "order.updated"}, payload)
    assert event.shipment is not None
    # The first tracking item is the order's own parcel (the one announced before tracking).
    assert (event.shipment.id, event.shipment.tracking_number) == ("woocommerce-727", "SF1")
    assert event.shipment.carrier == "S.F. Express"


def test_woocommerce_creation_ping_is_recognised_only_unsigned() -> None:
    assert woocommerce.is_ping({}, b"webhook_id=15")
    assert not woocommerce.is_ping({"X-WC-Webhook-Signature": "x"}, b"webhook_id=15")
    assert not woocommerce.is_ping({}, b'{"id": 1}')


# --- AfterShip ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("InfoReceived", ShipmentStatus.IN_TRANSIT),
        ("InTransit", ShipmentStatus.IN_TRANSIT),
        ("OutForDelivery", ShipmentStatus.OUT_FOR_DELIVERY),
        ("AttemptFail", ShipmentStatus.FAILED_ATTEMPT),
        ("Delivered", ShipmentStatus.DELIVERED),
        ("AvailableForPickup", ShipmentStatus.AVAILABLE_FOR_PICKUP),
        ("Exception", ShipmentStatus.EXCEPTION),
        ("Expired", ShipmentStatus.EXPIRED),
    ],
)
def test_aftership_tags_map_to_canonical_statuses(tag: str, expected: ShipmentStatus) -> None:
    payload = load("aftership_tracking_update_intransit.json")
    payload["msg"]["tag"] = tag
    (event,) = aftership.map_webhook({}, payload)
    assert event.type == EventType.SHIPMENT_UPDATED
    assert event.shipment is not None and event.shipment.status == expected
    assert event.shipment.id == "aftership-usps-0000000000000000"


def test_aftership_sample_without_offsets_is_dated_by_ts() -> None:
    (event,) = aftership.map_webhook({}, load("aftership_tracking_update_intransit.json"))
    assert event.occurred_at == datetime.fromtimestamp(1712741696, UTC)
    assert event.id == "aftership:94dadd60-ed26-46d0-aa52-3ced925a50ff:InTransit"


def test_aftership_keeps_the_last_checkpoint_and_expected_delivery() -> None:
    tracking = load("aftership_api_tracking_delivered_sdk_fixture.json")["data"]["tracking"]
    (event,) = aftership.map_webhook({}, {"event": "tracking_update", "msg": tracking, "ts": 1})
    assert event.shipment is not None
    assert event.shipment.status == ShipmentStatus.DELIVERED
    assert event.shipment.expected_delivery == date(2022, 7, 6)
    assert event.shipment.last_scan_at is not None
    assert event.occurred_at == event.shipment.last_scan_at


def test_aftership_refuses_a_tracking_without_number_or_with_an_unknown_tag() -> None:
    with pytest.raises(SourceError, match="tracking_number"):
        aftership.map_webhook({}, {"msg": {"tag": "InTransit"}, "ts": 1})
    with pytest.raises(SourceError, match="unknown AfterShip tag"):
        aftership.map_webhook({}, {"msg": {"tag": "Lost", "tracking_number": "1"}, "ts": 1})
    assert aftership.map_webhook({}, {"msg": {"tag": "Pending", "tracking_number": "1"}}) == []


# --- Twilio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", ["STOP", " stop ", "StopAll", "unsubscribe", "退订", "td", "T", "optout", "QUIT"]
)
def test_opt_out_keywords_count_as_the_whole_message_in_any_case(body: str) -> None:
    assert twilio.classify_reply(body) == twilio.Reply.OPT_OUT


def test_other_keywords_and_ordinary_replies() -> None:
    assert twilio.classify_reply("start") == twilio.Reply.OPT_IN
    assert twilio.classify_reply("Yes") == twilio.Reply.OPT_IN
    assert twilio.classify_reply("help") == twilio.Reply.HELP
    assert twilio.classify_reply("please stop the noise") == twilio.Reply.MESSAGE
    assert twilio.classify_reply("Hi there from Twilio") == twilio.Reply.MESSAGE


def test_inbound_sample_becomes_a_message_received_event() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    event = twilio.inbound_event(form("twilio_inbound_sms.txt"), received_at=now)
    assert event.type == EventType.MESSAGE_RECEIVED
    assert event.id == "twilio:SMa741ddeb574e5dda5516c73417fcd28a"
    assert event.message is not None
    assert (event.message.from_, event.message.body) == ("+13177592786", "Hi there from Twilio")


def test_status_callbacks_map_to_notification_statuses() -> None:
    sent = twilio.status_update(form("twilio_status_callback.txt"))
    assert (sent.status, sent.provider_status, sent.opted_out) == (None, "sent", None)
    failed = twilio.status_update(form("twilio_status_callback_failed_21610.txt"))
    assert failed.status == NotificationStatus.FAILED
    assert failed.reason == "Twilio reported failed (error 21610)"
    assert failed.opted_out == "+12028831111"
    delivered = twilio.status_update({"MessageStatus": "delivered", "MessageSid": "SM1"})
    assert (delivered.status, delivered.reason) == (NotificationStatus.DELIVERED, None)
    with pytest.raises(SourceError):
        twilio.status_update({})
