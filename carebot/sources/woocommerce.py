"""WooCommerce webhooks: ``X-WC-Webhook-*`` headers and the REST v3 order representation.

Accepted bodies: the REST v1, v2 and v3 order, and the legacy REST API's ``{"order": {...}}``
(WooCommerce 2.6–3.x webhooks with API version "Legacy"). Dates without ``_gmt`` (v1) are read
in the shop's zone (``CAREBOT_WEBHOOKS__WOOCOMMERCE_TIMEZONE``).

Order status → canonical event (WooCommerce has no shipped state of its own; ``completed`` is
what merchants set when the parcel leaves, so it is read as shipped):

- ``pending``, ``on-hold`` → ``order.placed``
- ``processing`` → ``order.paid``
- ``completed`` (and the tracking plugins' ``shipped`` / ``partial-shipped``) →
  ``order.shipped``, one per Shipment Tracking item (provider name, number, link); without a
  tracking plugin, one parcel without tracking number: the sample ``shipped`` rule waits
  for one, then sends the notice without it
- ``delivered`` (tracking plugins) → ``order.delivered``
- ``cancelled`` → ``order.cancelled``; ``refunded`` → ``order.refunded``
- ``failed``, ``trash``, ``checkout-draft`` and unknown statuses → nothing (answered 200, not
  stored: a failed payment is not something to tell the customer about here).

The event id is derived from the order id, status and modification time, so a repeated
delivery (WooCommerce retries with a new ``X-WC-Webhook-Delivery-ID``) is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
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
    obj,
    parse_time,
    text,
)
from carebot.sources.couriers import courier_name

__all__ = [
    "SIGNATURE_HEADER",
    "STATUS_EVENTS",
    "delivery_id",
    "is_ping",
    "map_webhook",
    "shipment_id",
]

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
DELIVERY_HEADER = "X-WC-Webhook-Delivery-ID"

STATUS_EVENTS: dict[str, EventType] = {
    "pending": EventType.ORDER_PLACED,
    "on-hold": EventType.ORDER_PLACED,
    "processing": EventType.ORDER_PAID,
    "completed": EventType.ORDER_SHIPPED,
    # Statuses of tracking plugins (Advanced Shipment Tracking and others).
    "shipped": EventType.ORDER_SHIPPED,
    "partial-shipped": EventType.ORDER_SHIPPED,
    "delivered": EventType.ORDER_DELIVERED,
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
    billing = obj(data.get("billing"))
    shipping = obj(data.get("shipping"))
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


def _tracking_items(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The Shipment Tracking extension's items (``meta_data``; ``order_meta`` in legacy)."""
    found: Any = None
    meta_data = data.get("meta_data")
    for meta in meta_data if isinstance(meta_data, list) else []:
        if isinstance(meta, dict) and meta.get("key") == _TRACKING_META:
            found = meta.get("value")
    if found is None:
        found = obj(data.get("order_meta")).get(_TRACKING_META)
    if not isinstance(found, list):
        return []
    return [e for e in found if isinstance(e, dict) and text(e.get("tracking_number"))]


def shipment_id(order_id: str, index: int, entry: dict[str, Any] | None = None) -> str:
    """A WooCommerce order's parcel: the first (tracked or not) is the order's own."""
    if index == 0 or entry is None:
        return f"woocommerce-{order_id}"
    ident = text(entry.get("tracking_id")) or text(entry.get("tracking_number"))
    return f"woocommerce-{order_id}-{ident}"


def _shipments(data: dict[str, Any], order_id: str) -> list[Shipment]:
    """One parcel per Shipment Tracking item; one without tracking when there is none.

    A merchant without a tracking plugin marks the order completed when it leaves: that is
    still a parcel, and the customer still hears it has shipped.
    """
    entries = _tracking_items(data)
    if not entries:
        return [Shipment(id=shipment_id(order_id, 0), order_id=order_id)]
    shipments = []
    for index, entry in enumerate(entries):
        provider = text(entry.get("tracking_provider"))
        shipments.append(
            Shipment(
                id=shipment_id(order_id, index, entry),
                order_id=order_id,
                carrier=text(entry.get("custom_tracking_provider")) or courier_name(provider),
                tracking_number=text(entry.get("tracking_number")),
                tracking_url=text(entry.get("custom_tracking_link"))
                or text(entry.get("tracking_link")),
            )
        )
    return shipments


def _from_legacy(order: dict[str, Any]) -> dict[str, Any]:
    """A legacy REST API (WooCommerce 2.6–3.x, ``{"order": {...}}``) order in the v2+ shape."""
    billing = obj(order.get("billing_address"))
    customer = obj(order.get("customer"))
    return {
        **order,
        "number": order.get("order_number"),
        # Legacy dates are UTC ("2015-01-26T20:00:21Z").
        "date_created_gmt": order.get("created_at"),
        "date_modified_gmt": order.get("updated_at"),
        "billing": {**billing, "email": billing.get("email") or customer.get("email")},
        "shipping": obj(order.get("shipping_address")),
    }


def map_webhook(
    headers: Mapping[str, str], payload: Any, *, store_zone: tzinfo | None = None
) -> list[Event]:
    """The canonical events of one WooCommerce order delivery (empty when nothing to tell).

    ``store_zone`` reads the dates sent without ``_gmt`` (REST v1); UTC when None.
    """
    topic = (header(headers, TOPIC_HEADER) or "").lower()
    if topic not in _ORDER_TOPICS:
        return []
    data = as_dict(payload, "WooCommerce payload")
    if "id" not in data and "order" in data:
        data = _from_legacy(as_dict(data["order"], "order"))
    order_id = id_text(data.get("id"), "order id")
    status = text(data.get("status"))
    if status is None:
        raise SourceError("order status is missing")
    status = status.lower().removeprefix("wc-")
    kind = STATUS_EVENTS.get(status)
    if kind is None:
        return []

    def when(gmt: str, local: str) -> datetime | None:
        return parse_time(data.get(gmt)) or parse_time(
            data.get(local), naive_zone=store_zone or UTC
        )

    placed = when("date_created_gmt", "date_created")
    occurred = when("date_modified_gmt", "date_modified") or placed
    if occurred is None:
        raise SourceError("no date_modified_gmt or date_created_gmt in the order")
    shipping = _address(data.get("shipping"))
    billing = _address(data.get("billing"))
    if shipping is None or not shipping.country:
        shipping = billing
    order = Order(
        id=order_id,
        number=text(data.get("number")),
        placed_at=placed,
        total=decimal(data.get("total")),
        currency=text(data.get("currency")),
        customer=_customer(data),
        shipping_address=shipping,
        billing_address=billing,
        items=line_items(data.get("line_items"), "name"),
    )
    base_id = f"woocommerce:{order_id}:{status}:{occurred.isoformat()}"
    if kind not in (EventType.ORDER_SHIPPED, EventType.ORDER_DELIVERED):
        return [Event(id=base_id, type=kind, occurred_at=occurred, order=order)]
    shipments = _shipments(data, order_id)
    if kind == EventType.ORDER_DELIVERED:
        shipments = shipments[:1]
    return [
        Event(
            id=base_id if index == 0 else f"{base_id}:{shipment.id}",
            type=kind,
            occurred_at=occurred,
            order=order,
            shipment=shipment,
        )
        for index, shipment in enumerate(shipments)
    ]
