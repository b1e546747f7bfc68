"""Read-only queries the web layer needs to join platform payloads to what the store knows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from carebot.events import ShipmentStatus
from carebot.store.models import NotificationRow, OrderRow, ShipmentRow

__all__ = [
    "KnownShipment",
    "notification_exists",
    "order_id_by_number",
    "order_known",
    "shipment_by_tracking",
    "untracked_shipment",
]


@dataclass(frozen=True)
class KnownShipment:
    id: str
    order_id: str | None
    carrier: str | None
    tracking_url: str | None = None


def _carrier_key(carrier: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (carrier or "").lower())


def shipment_by_tracking(
    session: Session, tracking_number: str, carrier: str | None = None
) -> KnownShipment | None:
    """The stored shipment with ``tracking_number`` (any case), preferring one with an order.

    ``carrier`` (a name or slug such as ``UPS`` / ``ups``) breaks ties between shipments that
    share a tracking number with different carriers; it never excludes the only match.
    """
    rows = session.execute(
        select(ShipmentRow.id, ShipmentRow.order_id, ShipmentRow.carrier, ShipmentRow.tracking_url)
        .where(func.upper(ShipmentRow.tracking_number) == tracking_number.strip().upper())
        .order_by(ShipmentRow.created_at, ShipmentRow.id)
    ).all()
    known = [KnownShipment(id=r[0], order_id=r[1], carrier=r[2], tracking_url=r[3]) for r in rows]
    if not known:
        return None
    wanted = _carrier_key(carrier)

    def rank(row: KnownShipment) -> tuple[int, int]:
        same_carrier = bool(wanted) and _carrier_key(row.carrier) == wanted
        return (0 if row.order_id is not None else 1, 0 if same_carrier else 1)

    return min(known, key=rank)


def notification_exists(session: Session, notification_id: int) -> bool:
    return session.get(NotificationRow, notification_id) is not None


def order_known(session: Session, order_id: str) -> bool:
    return session.get(OrderRow, order_id) is not None


def order_id_by_number(session: Session, number: str) -> str | None:
    """The order whose customer-facing number is ``number`` ("#1001" or "1001"), if one."""
    bare = number.strip().lstrip("#")
    rows = session.execute(
        select(OrderRow.id).where(OrderRow.number.in_([bare, f"#{bare}"])).limit(2)
    ).all()
    return rows[0][0] if len(rows) == 1 else None


def untracked_shipment(session: Session, order_id: str) -> KnownShipment | None:
    """The order's one live parcel without tracking number, if it has exactly one."""
    rows = session.execute(
        select(ShipmentRow.id, ShipmentRow.carrier, ShipmentRow.tracking_url)
        .where(
            ShipmentRow.order_id == order_id,
            ShipmentRow.tracking_number.is_(None),
            or_(
                ShipmentRow.status.is_(None),
                ShipmentRow.status != str(ShipmentStatus.CANCELLED),
            ),
        )
        .limit(2)
    ).all()
    if len(rows) != 1:
        return None
    return KnownShipment(
        id=rows[0][0], order_id=order_id, carrier=rows[0][1], tracking_url=rows[0][2]
    )
