"""WooCommerce webhooks: ``X-WC-Webhook-*`` headers and the REST v3 order representation.

Order status → canonical event (WooCommerce has no shipped state of its own; ``completed`` is
what merchants set when the parcel leaves, so it is read as shipped):

- ``pending``, ``on-hold`` → ``order.placed``
- ``processing`` → ``order.paid``
- ``completed`` → ``order.shipped`` (with the tracking number when the WooCommerce Shipment
  Tracking extension put one in ``meta_data``; without it the sample ``shipped`` rule waits)
- ``cancelled`` → ``order.cancelled``; ``refunded`` → ``order.refunded``
- ``failed``, ``trash``, ``checkout-draft`` and unknown statuses → nothing (answered 200, not
  stored: a failed payment is not something to tell the customer about here).

The event id is derived from the order id, status and modification time, so a repeated
delivery (WooCommerce retries with a new ``X-WC-Webhook-Delivery-ID``) is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from carebot.events import Address, Customer, Event, EventType, Order, Shipment
from carebot.exceptions import SourceError
from carebot.sources._common import (
    as_dict,
    decimal,
    header,
    id_text,
    line_items,
    parse_time,
    text,
)

__all__ = [
    "SIGNATURE_HEADER",
    "STATUS_EVENTS",
    "delivery_id",
    "is_ping",
    "map_webhook",
]

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"

STATUS_EVENTS: dict[str, EventType] = {
    "pending": EventType.ORDER_PLACED,
    "on-hold": EventType.ORDER_PLACED,
    "processing": EventType.ORDER_PAID,
    "completed": EventType.ORDER_SHIPPED,
    "cancelled": EventType.ORDER_CANCELLED,
    "refunded": EventType.ORDER_REFUNDED,
}
_ORDER_TOPICS = frozenset({"order.created", "order.updated"})
_TRACKING_META = "_wc_shipment_tracking_items"


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """WooCommerce's id of this delivery."""
    return header(headers, DELIVERY_HEADER)


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """True for the unsigned ``webhook_id=…`` form post WooCommerce sends on creation."""
    if header(headers, SIGNATURE_HEADER):
        return False
    try:
        form = parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return list(form) == ["webhook_id"]


def _address(data: Any) -> Address | None:
    if not isinstance(data, dict):
        return None
    return Address(
        country=text(data.get("country")),
        province=text(data.get("state")),
        city=text(data.get("city")),
        postal_code=text(data.get("postcode")),
        line1=text(data.get("address_1")),
        phone=text(data.get("phone")),
    )


def _customer(data: dict[str, Any]) -> Customer | None:
    billing = data.get("billing") if isinstance(data.get("billing"), dict) else {}
    shipping = data.get("shipping") if isinstance(data.get("shipping"), dict) else {}
    assert isinstance(billing, dict) and isinstance(shipping, dict)
    raw_id = data.get("customer_id")
    names = [text(billing.get("first_name")), text(billing.get("last_name"))]
    name = " ".join(n for n in names if n) or None
    customer = Customer(
        # 0 is a guest checkout: such customers are known by their email or phone.
        id=f"woocommerce-{raw_id}" if isinstance(raw_id, int) and raw_id > 0 else None,
        name=name,
        phone=text(shipping.get("phone")) or text(billing.get("phone")),
        email=text(billing.get("email")),
    )
    return None if customer.model_dump(exclude_none=True) == {} else customer


def _shipment(data: dict[str, Any], order_id: str) -> Shipment | None:
    """The tracking the Shipment Tracking extension keeps in ``meta_data``, if any."""
    for meta in data.get("meta_data") or []:
        if not isinstance(meta, dict) or meta.get("key") != _TRACKING_META:
            continue
        entries = meta.get("value")
        if isinstance(entries, list):
            for entry in reversed(entries):
                if isinstance(entry, dict) and text(entry.get("tracking_number")):
                    ident = text(entry.get("tracking_id")) or text(entry.get("tracking_number"))
                    return Shipment(
                        id=f"woocommerce-{order_id}-{ident}",
                        order_id=order_id,
                        carrier=text(entry.get("custom_tracking_provider"))
                        or text(entry.get("tracking_provider")),
                        tracking_number=text(entry.get("tracking_number")),
                    )
    return None


def map_webhook(headers: Mapping[str, str], payload: Any) -> list[Event]:
    """The canonical events of one WooCommerce order delivery (empty when nothing to tell)."""
    topic = (header(headers, TOPIC_HEADER) or "").lower()
    if topic not in _ORDER_TOPICS:
        return []
    data = as_dict(payload, "WooCommerce payload")
    order_id = id_text(data.get("id"), "order id")
    status = text(data.get("status"))
    if status is None:
        raise SourceError("order status is missing")
    kind = STATUS_EVENTS.get(status.lower())
    if kind is None:
        return []
    placed = parse_time(data.get("date_created_gmt")) or parse_time(data.get("date_created"))
    occurred = (
        parse_time(data.get("date_modified_gmt")) or parse_time(data.get("date_modified")) or placed
    )
    if occurred is None:
        raise SourceError("no date_modified_gmt or date_created_gmt in the order")
    shipping = _address(data.get("shipping"))
    billing = _address(data.get("billing"))
    if shipping is None or not shipping.country:
        shipping = billing
    order = Order(
        id=order_id,
        placed_at=placed,
        total=decimal(data.get("total")),
        currency=text(data.get("currency")),
        customer=_customer(data),
        shipping_address=shipping,
        items=line_items(data.get("line_items"), "name"),
    )
    shipment = _shipment(data, order_id) if kind == EventType.ORDER_SHIPPED else None
    return [
        Event(
            id=f"woocommerce:{order_id}:{status.lower()}:{occurred.isoformat()}",
            type=kind,
            occurred_at=occurred,
            order=order,
            shipment=shipment,
        )
    ]
