"""Read-only queries the web layer needs to join platform payloads to what the store knows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carebot.store.models import NotificationRow, ShipmentRow

__all__ = ["KnownShipment", "notification_exists", "shipment_by_tracking"]


@dataclass(frozen=True)
class KnownShipment:
    id: str
    order_id: str | None
    carrier: str | None


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
        select(ShipmentRow.id, ShipmentRow.order_id, ShipmentRow.carrier)
        .where(func.upper(ShipmentRow.tracking_number) == tracking_number.strip().upper())
        .order_by(ShipmentRow.created_at, ShipmentRow.id)
    ).all()
    known = [KnownShipment(id=r[0], order_id=r[1], carrier=r[2]) for r in rows]
    if not known:
        return None
    wanted = _carrier_key(carrier)

    def rank(row: KnownShipment) -> tuple[int, int]:
        same_carrier = bool(wanted) and _carrier_key(row.carrier) == wanted
        return (0 if row.order_id is not None else 1, 0 if same_carrier else 1)

    return min(known, key=rank)


def notification_exists(session: Session, notification_id: int) -> bool:
    return session.get(NotificationRow, notification_id) is not None
