"""Read-only queries over the delivered history, for transit learning and restock forecasts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
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


def delivered_transits(
    session: Session, *, since: datetime
) -> list[tuple[datetime, datetime, dict[str, Any]]]:
    """(shipped_at, delivered_at, shipping address) of shipments delivered since ``since``."""
    rows = session.execute(
        select(ShipmentRow.shipped_at, ShipmentRow.delivered_at, OrderRow.shipping_address)
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .where(
            ShipmentRow.shipped_at.is_not(None),
            ShipmentRow.delivered_at.is_not(None),
            ShipmentRow.delivered_at >= since,
        )
        .order_by(ShipmentRow.delivered_at, ShipmentRow.id)
    ).all()
    return [(shipped, delivered, dict(address or {})) for shipped, delivered, address in rows]


def purchase_lines(session: Session, *, since: datetime) -> list[PurchaseLine]:
    """Line items with a SKU of customers' orders placed since ``since`` (not cancelled)."""
    rows = session.execute(
        select(LineItemRow, OrderRow, CustomerRow)
        .join(OrderRow, OrderRow.id == LineItemRow.order_id)
        .join(CustomerRow, CustomerRow.id == OrderRow.customer_id)
        .where(
            LineItemRow.sku.is_not(None),
            OrderRow.status.not_in(_VOID_ORDER_STATUSES),
            OrderRow.placed_at >= since,
        )
        .order_by(CustomerRow.id, OrderRow.placed_at, OrderRow.id, LineItemRow.position)
    ).all()
    return [
        PurchaseLine(
            customer_id=customer.id,
            order_id=order.id,
            sku=str(item.sku),
            title=item.title,
            tags=tuple(item.tags or ()),
            quantity=item.quantity,
            placed_at=order.placed_at,
            delivered_at=order.delivered_at,
            shipping_address=dict(order.shipping_address or {}),
            timezone=customer.timezone,
            phone=customer.phone,
        )
        for item, order, customer in rows
    ]


def shipments_in_transit(session: Session, *, since: datetime) -> list[ShipmentInTransit]:
    """Shipments on their way (shipped, or reported moving) since ``since``, of live orders."""
    rows = session.execute(
        select(ShipmentRow, OrderRow, CustomerRow)
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .outerjoin(CustomerRow, CustomerRow.id == OrderRow.customer_id)
        .where(
            func.coalesce(ShipmentRow.shipped_at, ShipmentRow.created_at) >= since,
            ShipmentRow.delivered_at.is_(None),
            or_(
                ShipmentRow.status.in_(_MOVING),
                and_(ShipmentRow.status.is_(None), ShipmentRow.shipped_at.is_not(None)),
            ),
            OrderRow.status.not_in(_VOID_ORDER_STATUSES),
        )
        .order_by(ShipmentRow.id)
    ).all()
    return [
        ShipmentInTransit(
            id=shipment.id,
            order_id=order.id,
            customer_id=order.customer_id,
            shipped_at=shipment.shipped_at,
            expected_delivery=shipment.expected_delivery,
            shipping_address=dict(order.shipping_address or {}),
            timezone=customer.timezone if customer else None,
            phone=customer.phone if customer else None,
        )
        for shipment, order, customer in rows
    ]


def declared_disruptions(session: Session) -> list[dict[str, Any]]:
    """The ``disruption`` fields of every ``disruption.declared`` event, oldest first."""
    payloads = session.scalars(
        select(EventRow.payload)
        .where(EventRow.type == str(EventType.DISRUPTION_DECLARED))
        .order_by(EventRow.occurred_at, EventRow.id)
    ).all()
    return [dict(p["disruption"]) for p in payloads if isinstance(p.get("disruption"), dict)]
