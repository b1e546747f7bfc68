"""Read-only queries over the delivered history, for transit learning and restock forecasts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from carebot.events import EventType, ShipmentStatus
from carebot.store.models import CustomerRow, EventRow, LineItemRow, OrderRow, ShipmentRow

__all__ = [
    "PurchaseLine",
    "ShipmentInTransit",
    "declared_disruptions",
    "delivered_transits",
    "purchase_lines",
    "shipments_in_transit",
]

_VOID_ORDER_STATUSES = ("cancelled", "refunded")
# Also read by store/dashboard.py: keep the names.
_DONE_SHIPMENT_STATUSES = (str(ShipmentStatus.DELIVERED), str(ShipmentStatus.PENDING))
_MOVING = tuple(
    str(s)
    for s in (
        ShipmentStatus.IN_TRANSIT,
        ShipmentStatus.OUT_FOR_DELIVERY,
        ShipmentStatus.FAILED_ATTEMPT,
        ShipmentStatus.EXCEPTION,
    )
)


@dataclass(frozen=True)
class PurchaseLine:
    """One line item of a live order, with what a restock forecast needs around it."""

    customer_id: str
    order_id: str
    sku: str
    title: str | None
    tags: tuple[str, ...]
    quantity: int
    placed_at: datetime | None
    delivered_at: datetime | None
    shipping_address: dict[str, Any]
    timezone: str | None
    phone: str | None


@dataclass(frozen=True)
class ShipmentInTransit:
    """A shipment that left and has not arrived, and where it is going."""

    id: str
    order_id: str
    customer_id: str | None
    shipped_at: datetime | None
    expected_delivery: date | None
    shipping_address: dict[str, Any]
    timezone: str | None
    phone: str | None


# Built once: the forecasting watchers run these every hour (every virtual hour of a replay).
_DELIVERED_TRANSITS = (
    select(ShipmentRow.shipped_at, ShipmentRow.delivered_at, OrderRow.shipping_address)
    .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
    .where(
        ShipmentRow.shipped_at.is_not(None),
        ShipmentRow.delivered_at.is_not(None),
        ShipmentRow.delivered_at >= bindparam("since"),
    )
    .order_by(ShipmentRow.delivered_at, ShipmentRow.id)
)

_PURCHASE_LINES = (
    select(
        CustomerRow.id,
        OrderRow.id,
        LineItemRow.sku,
        LineItemRow.title,
        LineItemRow.tags,
        LineItemRow.quantity,
        OrderRow.placed_at,
        OrderRow.delivered_at,
        OrderRow.shipping_address,
        CustomerRow.timezone,
        CustomerRow.phone,
    )
    .join(OrderRow, OrderRow.id == LineItemRow.order_id)
    .join(CustomerRow, CustomerRow.id == OrderRow.customer_id)
    .where(
        LineItemRow.sku.is_not(None),
        OrderRow.status.not_in(_VOID_ORDER_STATUSES),
        OrderRow.placed_at >= bindparam("since"),
    )
    .order_by(CustomerRow.id, OrderRow.placed_at, OrderRow.id, LineItemRow.position)
)

_SHIPMENTS_IN_TRANSIT = (
    select(
        ShipmentRow.id,
        OrderRow.id,
        OrderRow.customer_id,
        ShipmentRow.shipped_at,
        ShipmentRow.expected_delivery,
        OrderRow.shipping_address,
        CustomerRow.timezone,
        CustomerRow.phone,
    )
    .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
    .outerjoin(CustomerRow, CustomerRow.id == OrderRow.customer_id)
    .where(
        func.coalesce(ShipmentRow.shipped_at, ShipmentRow.created_at) >= bindparam("since"),
        ShipmentRow.delivered_at.is_(None),
        or_(
            ShipmentRow.status.in_(_MOVING),
            and_(ShipmentRow.status.is_(None), ShipmentRow.shipped_at.is_not(None)),
        ),
        OrderRow.status.not_in(_VOID_ORDER_STATUSES),
    )
    .order_by(ShipmentRow.id)
)


_DECLARED_DISRUPTIONS = (
    select(EventRow.payload)
    .where(EventRow.type == str(EventType.DISRUPTION_DECLARED))
    .order_by(EventRow.occurred_at, EventRow.id)
)


def delivered_transits(
    session: Session, *, since: datetime
) -> list[tuple[datetime, datetime, dict[str, Any]]]:
    """(shipped_at, delivered_at, shipping address) of shipments delivered since ``since``."""
    rows = session.execute(_DELIVERED_TRANSITS, {"since": since}).all()
    return [(shipped, delivered, dict(address or {})) for shipped, delivered, address in rows]


def purchase_lines(session: Session, *, since: datetime) -> list[PurchaseLine]:
    """Line items with a SKU of customers' orders placed since ``since`` (not cancelled).

    Read as plain columns: the watchers ask for a year of lines every hour, and whole rows
    would each bring their order's and customer's related rows along."""
    rows = session.execute(_PURCHASE_LINES, {"since": since}).all()
    return [
        PurchaseLine(
            customer_id=customer_id,
            order_id=order_id,
            sku=str(sku),
            title=title,
            tags=tuple(tags or ()),
            quantity=quantity,
            placed_at=placed_at,
            delivered_at=delivered_at,
            shipping_address=dict(address or {}),
            timezone=timezone,
            phone=phone,
        )
        for (
            customer_id,
            order_id,
            sku,
            title,
            tags,
            quantity,
            placed_at,
            delivered_at,
            address,
            timezone,
            phone,
        ) in rows
    ]


def shipments_in_transit(session: Session, *, since: datetime) -> list[ShipmentInTransit]:
    """Shipments on their way (shipped, or reported moving) since ``since``, of live orders."""
    rows = session.execute(_SHIPMENTS_IN_TRANSIT, {"since": since}).all()
    # Plain columns, not whole rows (see purchase_lines); no customer reads as None.
    return [
        ShipmentInTransit(
            id=shipment_id,
            order_id=order_id,
            customer_id=customer_id,
            shipped_at=shipped_at,
            expected_delivery=expected,
            shipping_address=dict(address or {}),
            timezone=timezone,
            phone=phone,
        )
        for (
            shipment_id,
            order_id,
            customer_id,
            shipped_at,
            expected,
            address,
            timezone,
            phone,
        ) in rows
    ]


def declared_disruptions(session: Session) -> list[dict[str, Any]]:
    """The ``disruption`` fields of every ``disruption.declared`` event, oldest first."""
    payloads = session.scalars(_DECLARED_DISRUPTIONS).all()
    return [dict(p["disruption"]) for p in payloads if isinstance(p.get("disruption"), dict)]
