"""Shopify webhooks: ``X-Shopify-*`` headers and the REST order/fulfillment/refund payloads.

Events are routed on the ``X-Shopify-Topic`` header, never on body fields: Shopify's samples
reuse one order body for every ``orders/*`` topic. Ids exceed 2**53 and are kept as strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carebot.events import (
    Address,
    Customer,
    Event,
    EventType,
    Order,
    Shipment,
    ShipmentStatus,
)
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

__all__ = [
    "HMAC_HEADER",
    "LIVE_FULFILLMENT_STATUSES",
    "SHIPMENT_STATUSES",
    "TOPICS",
    "VOID_FULFILLMENT_STATUSES",
    "delivery_id",
    "map_webhook",
    "shipment_id",
]

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"

_ORDER_TOPICS = {
    "orders/create": EventType.ORDER_PLACED,
    "orders/paid": EventType.ORDER_PAID,
    "orders/fulfilled": EventType.ORDER_SHIPPED,
    "orders/cancelled": EventType.ORDER_CANCELLED,
}
TOPICS: frozenset[str] = frozenset(
    {
        *_ORDER_TOPICS,
        "fulfillments/create",
        "fulfillments/update",
        "fulfillment_events/create",
        "refunds/create",
    }
)

# A fulfillment's own ``status``: only these are a parcel on its way. ``cancelled``, ``error``
# and ``failure`` (the fulfillment service refused it) are not a parcel of the order.
LIVE_FULFILLMENT_STATUSES = frozenset({"pending", "open", "success"})
VOID_FULFILLMENT_STATUSES = frozenset({"cancelled", "error", "failure"})

# ``shipment_status`` of a fulfillment (REST, snake_case) → canonical status. States before
# the carrier has the parcel map to None: they change nothing the customer should hear about.
SHIPMENT_STATUSES: dict[str, ShipmentStatus | None] = {
    "label_printed": None,
    "label_purchased": None,
    "confirmed": None,
    "carrier_picked_up": ShipmentStatus.IN_TRANSIT,
    "in_transit": ShipmentStatus.IN_TRANSIT,
    "delayed": ShipmentStatus.IN_TRANSIT,
    "out_for_delivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "attempted_delivery": ShipmentStatus.FAILED_ATTEMPT,
    "ready_for_pickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "delivered": ShipmentStatus.DELIVERED,
    "failure": ShipmentStatus.EXCEPTION,
}


def shipment_id(fulfillment_id: str) -> str:
    """The canonical shipment id of a Shopify fulfillment."""
    return f"shopify-{fulfillment_id}"


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """The per-delivery id Shopify sends (kept with the stored event)."""
    return header(headers, WEBHOOK_ID_HEADER) or header(headers, EVENT_ID_HEADER)


def _name(*parts: Any) -> str | None:
    joined = " ".join(p for p in (text(x) for x in parts) if p)
    return joined or None


def _address(data: Any) -> Address | None:
    if not isinstance(data, dict):
        return None
    return Address(
        country=text(data.get("country_code")) or text(data.get("country")),
        province=text(data.get("province")),
        city=text(data.get("city")),
        postal_code=text(data.get("zip")),
        line1=text(data.get("address1")),
        phone=text(data.get("phone")),
    )


def _first(*values: Any) -> str | None:
    for value in values:
        found = text(value)
        if found is not None:
            return found
    return None


def _customer(order: dict[str, Any]) -> Customer | None:
    raw = obj(order.get("customer"))
    shipping = obj(order.get("shipping_address"))
    billing = obj(order.get("billing_address"))
    default = obj(raw.get("default_address"))
    customer = Customer(
        id=text(raw.get("id")),
        name=_name(raw.get("first_name"), raw.get("last_name"))
        or text(shipping.get("name"))
        or text(billing.get("name")),
        phone=_first(
            raw.get("phone"),
            order.get("phone"),
            shipping.get("phone"),
            billing.get("phone"),
            default.get("phone"),
        ),
        email=_first(raw.get("email"), order.get("email"), order.get("contact_email")),
        locale=text(order.get("customer_locale")),
    )
    return None if customer.model_dump(exclude_none=True) == {} else customer


def _order(data: dict[str, Any]) -> Order:
    return Order(
        id=id_text(data.get("id"), "order id"),
        # ``name`` is what the customer sees ("#1001"); ``order_number`` its bare number.
        number=text(data.get("name")) or text(data.get("order_number")),
        placed_at=parse_time(data.get("created_at")) or parse_time(data.get("processed_at")),
        total=decimal(data.get("total_price")),
        currency=text(data.get("currency")),
        customer=_customer(data),
        shipping_address=_address(data.get("shipping_address")),
        billing_address=_address(data.get("billing_address")),
        items=line_items(data.get("line_items"), "title", "name"),
    )


def _first_of(fulfillment: dict[str, Any], one: str, many: str) -> str | None:
    """``tracking_number`` else the first of ``tracking_numbers`` (and so for the URLs)."""
    values = fulfillment.get(many)
    return text(fulfillment.get(one)) or (
        text(values[0]) if isinstance(values, list) and values else None
    )


def is_live(fulfillment: dict[str, Any]) -> bool:
    """Whether a fulfillment is a parcel: not cancelled, failed or in error."""
    status = (text(fulfillment.get("status")) or "").lower()
    return status not in VOID_FULFILLMENT_STATUSES


def _shipment(fulfillment: dict[str, Any], order_id: str) -> Shipment:
    raw_status = text(fulfillment.get("shipment_status"))
    return Shipment(
        id=shipment_id(id_text(fulfillment.get("id"), "fulfillment id")),
        order_id=order_id,
        carrier=text(fulfillment.get("tracking_company")),
        tracking_number=_first_of(fulfillment, "tracking_number", "tracking_numbers"),
        tracking_url=_first_of(fulfillment, "tracking_url", "tracking_urls"),
        status=(
            ShipmentStatus.CANCELLED
            if not is_live(fulfillment)
            else SHIPMENT_STATUSES.get(raw_status.lower())
            if raw_status
            else None
        ),
    )


def _occurred_at(data: dict[str, Any], headers: Mapping[str, str], *fields: str) -> datetime:
    for name in fields:
        found = parse_time(data.get(name))
        if found is not None:
            return found
    found = parse_time(header(headers, TRIGGERED_AT_HEADER))
    if found is None:
        raise SourceError(f"no time in the payload ({', '.join(fields)}) or headers")
    return found


def _event_id(headers: Mapping[str, str], topic: str, fallback: str) -> str:
    event_id = header(headers, EVENT_ID_HEADER)
    if event_id:
        # One merchant action shares its event id across topics: the topic keeps them apart.
        return f"shopify:{event_id}:{topic}"
    webhook_id = header(headers, WEBHOOK_ID_HEADER)
    if webhook_id:
        return f"shopify:{webhook_id}:{topic}"
    return f"shopify:{topic}:{fallback}"


def _latest_fulfillment(order: dict[str, Any]) -> dict[str, Any] | None:
    listed = order.get("fulfillments")
    found = [
        f
        for f in (listed if isinstance(listed, list) else [])
        if isinstance(f, dict) and f.get("id") and is_live(f)
    ]
    with_tracking = [f for f in found if text(f.get("tracking_number"))]
    chosen = with_tracking or found
    return chosen[-1] if chosen else None


def _fulfillment_order(data: dict[str, Any], order_id: str) -> Order:
    destination = obj(data.get("destination"))
    phone = text(destination.get("phone"))
    name = text(destination.get("name"))
    email = text(data.get("email"))
    customer = Customer(name=name, phone=phone, email=email) if (phone or email or name) else None
    return Order(
        id=order_id,
        customer=customer,
        shipping_address=_address(destination) if destination else None,
    )


def _fulfillment_event(data: dict[str, Any], headers: Mapping[str, str]) -> list[Event]:
    """``fulfillment_events/create``: the carrier's news about one fulfillment."""
    order_id = id_text(data.get("order_id"), "order_id")
    fulfillment = id_text(data.get("fulfillment_id"), "fulfillment_id")
    raw = (text(data.get("status")) or "").lower()
    if raw not in SHIPMENT_STATUSES:
        raise SourceError(f"unknown fulfillment event status {raw or None!r}")
    status = SHIPMENT_STATUSES[raw]
    expected = parse_time(data.get("estimated_delivery_at"))
    if status is None and expected is None:
        return []  # a label printed: nothing the customer needs to hear
    occurred = _occurred_at(data, headers, "happened_at", "created_at", "updated_at")
    event_id = text(data.get("id")) or f"{fulfillment}:{raw}:{occurred.isoformat()}"
    return [
        Event(
            id=_event_id(headers, "fulfillment_events/create", event_id),
            type=EventType.SHIPMENT_UPDATED,
            occurred_at=occurred,
            order=Order(id=order_id),
            shipment=Shipment(
                id=shipment_id(fulfillment),
                order_id=order_id,
                status=status,
                expected_delivery=expected.date() if expected else None,
                last_scan_at=occurred if status is not None else None,
            ),
        )
    ]


# Where an order topic's time is read, first found first.
_ORDER_TIMES = {
    "orders/create": ("created_at", "processed_at"),
    "orders/cancelled": ("cancelled_at", "updated_at"),
}
_ORDER_TIMES_DEFAULT = ("updated_at", "processed_at", "created_at")


def _order_event(data: dict[str, Any], headers: Mapping[str, str], topic: str) -> list[Event]:
    """The event of an ``orders/*`` delivery; ``orders/fulfilled`` brings its latest parcel."""
    order = _order(data)
    occurred = _occurred_at(data, headers, *_ORDER_TIMES.get(topic, _ORDER_TIMES_DEFAULT))
    shipment = None
    if topic == "orders/fulfilled":
        fulfillment = _latest_fulfillment(data)
        if fulfillment is None and isinstance(data.get("fulfillments"), list):
            listed = data["fulfillments"]
            if any(isinstance(f, dict) and not is_live(f) for f in listed):
                return []  # every fulfillment was cancelled or failed: nothing shipped
        shipment = _shipment(fulfillment, order.id) if fulfillment else None
    return [
        Event(
            id=_event_id(headers, topic, f"{order.id}:{occurred.isoformat()}"),
            type=_ORDER_TOPICS[topic],
            occurred_at=occurred,
            order=order,
            shipment=shipment,
        )
    ]


def map_webhook(headers: Mapping[str, str], payload: Any) -> list[Event]:
    """The canonical events of one Shopify delivery; ``SourceError`` when it cannot be mapped."""
    topic = (header(headers, TOPIC_HEADER) or "").lower()
    if not topic:
        raise SourceError("missing X-Shopify-Topic header")
    if topic not in TOPICS:
        raise SourceError(f"unsupported Shopify topic {topic!r}")
    data = as_dict(payload, "Shopify payload")
    if topic in _ORDER_TOPICS:
        return _order_event(data, headers, topic)
    if topic == "fulfillment_events/create":
        return _fulfillment_event(data, headers)
    order_id = id_text(data.get("order_id"), "order_id")
    if topic == "refunds/create":
        occurred = _occurred_at(data, headers, "processed_at", "created_at")
        refund_id = id_text(data.get("id"), "refund id")
        return [
            Event(
                id=_event_id(headers, topic, refund_id),
                type=EventType.ORDER_REFUNDED,
                occurred_at=occurred,
                order=Order(id=order_id),
            )
        ]
    shipment = _shipment(data, order_id)
    if topic == "fulfillments/create":
        occurred = _occurred_at(data, headers, "created_at", "updated_at")
        # A fulfillment born cancelled or failed never left: it only voids its parcel.
        live = shipment.status != ShipmentStatus.CANCELLED
        kind = EventType.ORDER_SHIPPED if live else EventType.SHIPMENT_UPDATED
    else:
        occurred = _occurred_at(data, headers, "updated_at", "created_at")
        kind = EventType.SHIPMENT_UPDATED
    return [
        Event(
            id=_event_id(headers, topic, f"{shipment.id}:{occurred.isoformat()}"),
            type=kind,
            occurred_at=occurred,
            order=_fulfillment_order(data, order_id),
            shipment=shipment,
        )
    ]
