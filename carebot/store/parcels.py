"""Parcels on their way, as the dashboard's disruption reach and at-risk listings read them.

"In transit" is read as the disruption watcher reads it: shipped in the window, not delivered,
not pending or ended, the order alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select
from sqlalchemy.orm import Session

from carebot.events import ShipmentStatus
from carebot.store.models import OrderRow, ShipmentRow

__all__ = ["ParcelGroup", "in_transit_by_address", "parcel_orders_in_transit", "parcels_in_transit"]

_VOID_ORDERS = ("cancelled", "refunded")
_NOT_MOVING = tuple(
    str(s)
    for s in (
        ShipmentStatus.DELIVERED,
        ShipmentStatus.PENDING,
        ShipmentStatus.CANCELLED,
        ShipmentStatus.EXPIRED,
    )
)


def in_transit_by_address(
    session: Session, *, since: datetime
) -> list[tuple[dict[str, Any], int, int]]:
    """Parcels on their way (shipped since ``since``), grouped by shipping address:
    ``(address, shipments, customers)``; a disruption's reach is a sum over its addresses."""
    rows = session.execute(
        select(
            OrderRow.shipping_address,
            func.count(ShipmentRow.id),
            func.count(distinct(OrderRow.customer_id)),
        )
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .where(*_in_transit_filter(since))
        .group_by(OrderRow.shipping_address)
    ).all()
    return [
        (dict(address or {}), int(shipments), int(customers))
        for address, shipments, customers in rows
    ]


@dataclass(frozen=True)
class ParcelGroup:
    """Parcels on their way that share an address, an expected delivery day and a ship time."""

    address: dict[str, Any]
    expected_delivery: date | None
    shipped_at: datetime | None
    shipments: int
    customers: int
    # Set when the group was read for a list of orders (one parcel per group).
    order_id: str | None = None


def _in_transit_filter(since: datetime) -> list[ColumnElement[bool]]:
    return [
        ShipmentRow.shipped_at >= since,
        ShipmentRow.delivered_at.is_(None),
        ShipmentRow.status.is_(None) | ShipmentRow.status.not_in(_NOT_MOVING),
        OrderRow.status.not_in(_VOID_ORDERS),
    ]


def parcels_in_transit(session: Session, *, since: datetime) -> list[ParcelGroup]:
    """Parcels on their way (shipped since ``since``), grouped so that a disruption's reach
    (where, and arriving when) is a sum over the groups: by address and expected delivery day,
    and by ship time only where no delivery day is known (the arrival is then reckoned from it).
    """
    shipped = case((ShipmentRow.expected_delivery.is_(None), ShipmentRow.shipped_at))
    rows = session.execute(
        select(
            OrderRow.shipping_address,
            ShipmentRow.expected_delivery,
            shipped,
            func.count(ShipmentRow.id),
            func.count(distinct(OrderRow.customer_id)),
        )
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .where(*_in_transit_filter(since))
        .group_by(OrderRow.shipping_address, ShipmentRow.expected_delivery, shipped)
    ).all()
    return [
        ParcelGroup(dict(address or {}), expected, shipped_at, int(shipments), int(customers))
        for address, expected, shipped_at, shipments, customers in rows
    ]


def parcel_orders_in_transit(
    session: Session, *, since: datetime, limit: int = 5000
) -> list[ParcelGroup]:
    """One row per parcel on its way, newest first, with its order id."""
    rows = session.execute(
        select(
            OrderRow.shipping_address,
            ShipmentRow.expected_delivery,
            ShipmentRow.shipped_at,
            ShipmentRow.order_id,
        )
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .where(*_in_transit_filter(since))
        .order_by(ShipmentRow.shipped_at.desc(), ShipmentRow.id)
        .limit(limit)
    ).all()
    return [
        ParcelGroup(dict(address or {}), expected, shipped, 1, 1, order_id)
        for address, expected, shipped, order_id in rows
    ]
