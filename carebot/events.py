"""Canonical events and entities: the one vocabulary every part of carebot speaks.

Sources map platform payloads to these models; the store merges them into what it knows; the
planner and templates read them. A later event may carry only ids and the fields that changed,
so every field but the ids is optional.
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from difflib import get_close_matches
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from carebot.exceptions import EventError

__all__ = [
    "DERIVED_EVENT_TYPES",
    "EVENT_TYPES",
    "Address",
    "Customer",
    "Event",
    "EventType",
    "InboundMessage",
    "LineItem",
    "Order",
    "Shipment",
    "ShipmentStatus",
    "parse_event",
]


class EventType(enum.StrEnum):
    ORDER_PLACED = "order.placed"
    ORDER_PAID = "order.paid"
    ORDER_SHIPPED = "order.shipped"
    SHIPMENT_UPDATED = "shipment.updated"
    ORDER_DELIVERED = "order.delivered"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_REFUNDED = "order.refunded"
    CUSTOMER_UPDATED = "customer.updated"
    MESSAGE_RECEIVED = "message.received"
    DISRUPTION_DECLARED = "disruption.declared"
    # derived by the pipeline: a reply matched to a feedback request, scored and classified
    FEEDBACK_RECEIVED = "feedback.received"
    # derived by watchers
    SHIPMENT_STALLED = "shipment.stalled"
    SHIPMENT_LATE = "shipment.late"
    DISRUPTION_SHIPMENT_AT_RISK = "disruption.shipment_at_risk"
    DISRUPTION_STOCK_UP = "disruption.stock_up"
    RESTOCK_DUE = "restock.due"
    # service recovery: the merchant's step on a case (dashboard, admin API, or a replayed file)
    CASE_UPDATED = "case.updated"
    # derived: a case past its response deadline, a case resolved, the weekly digest
    CASE_OVERDUE = "case.overdue"
    CASE_RESOLVED = "case.resolved"
    DIGEST_WEEKLY = "digest.weekly"


EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
DERIVED_EVENT_TYPES: frozenset[str] = frozenset(
    {
        EventType.SHIPMENT_STALLED,
        EventType.SHIPMENT_LATE,
        EventType.DISRUPTION_SHIPMENT_AT_RISK,
        EventType.DISRUPTION_STOCK_UP,
        EventType.RESTOCK_DUE,
        EventType.FEEDBACK_RECEIVED,
        EventType.CASE_OVERDUE,
        EventType.CASE_RESOLVED,
        EventType.DIGEST_WEEKLY,
    }
)


class ShipmentStatus(enum.StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    FAILED_ATTEMPT = "failed_attempt"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    EXCEPTION = "exception"
    # The platform voided this fulfillment (cancelled, failed): it is not a parcel of the order.
    CANCELLED = "cancelled"
    # The tracking service stopped following the parcel (AfterShip ``Expired``): not watched.
    EXPIRED = "expired"


class _Model(BaseModel):
    # Unknown fields are kept, not refused: platforms and merchants add fields without notice.
    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)


class Customer(_Model):
    id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str | None = None
    timezone: str | None = None


class Address(_Model):
    country: str | None = None
    province: str | None = None
    city: str | None = None
    postal_code: str | None = None
    line1: str | None = None
    phone: str | None = None


class LineItem(_Model):
    sku: str | None = None
    title: str | None = None
    quantity: int = Field(default=1, ge=0)
    unit_price: Decimal | None = None
    tags: list[str] = Field(default_factory=list)


class Order(_Model):
    id: str = Field(min_length=1)
    # The number the customer knows ("#1001"); ``id`` stays the join key.
    number: str | None = None
    placed_at: AwareDatetime | None = None
    total: Decimal | None = None
    currency: str | None = None
    customer: Customer | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    items: list[LineItem] | None = None


class Shipment(_Model):
    id: str = Field(min_length=1)
    order_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    status: ShipmentStatus | None = None
    expected_delivery: date | None = None
    last_scan_at: AwareDatetime | None = None


class InboundMessage(_Model):
    channel: str = "sms"
    from_: str = Field(alias="from")
    body: str = ""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)


class Event(_Model):
    """One thing that happened, as carebot understands it."""

    id: str = Field(min_length=1, max_length=200)
    type: EventType
    occurred_at: AwareDatetime
    order: Order | None = None
    shipment: Shipment | None = None
    customer: Customer | None = None
    message: InboundMessage | None = None
    disruption: dict[str, Any] | None = None
    # For ``feedback.received``: score, category, text, the shipment history (see feedback.py).
    feedback: dict[str, Any] | None = None
    # For ``case.*``: the case (see cases.py); for ``case.updated`` at least ``status``.
    case: dict[str, Any] | None = None
    # For ``digest.weekly``: the week's figures (see watchers/digest.py).
    digest: dict[str, Any] | None = None

    @property
    def order_id(self) -> str | None:
        if self.order is not None:
            return self.order.id
        if self.shipment is not None:
            return self.shipment.order_id
        return None


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "body"
    given = error.get("input")
    if error["loc"] == ("type",) and isinstance(given, str):
        hint = get_close_matches(given, sorted(EVENT_TYPES), n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"type: unknown event type {given!r}{suggestion}"
    if isinstance(given, str | int | float) and not isinstance(given, bool):
        return f"{where}: {error['msg']} (got {given!r})"
    return f"{where}: {error['msg']}"


def parse_event(data: Any) -> Event:
    """Validate ``data`` (decoded JSON) as a canonical event, or raise ``EventError``."""
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(_describe(err) for err in exc.errors())
        raise EventError(f"invalid event: {reasons}") from exc
