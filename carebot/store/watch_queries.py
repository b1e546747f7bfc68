"""Read-only queries the watchers scan: shipments that may be stalled or late."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from carebot.store.models import CustomerRow, EventRow, OrderRow, ShipmentRow

__all__ = ["WatchedShipment", "unreported_shipments"]

# Orders still on their way: a cancelled, refunded or delivered order has nothing to watch.
_LIVE_ORDER_STATUSES = ("placed", "paid", "shipped")


@dataclass(frozen=True)
class WatchedShipment:
    """A shipment still on its way, with what a watcher needs to judge it."""

    id: str
    order_id: str
    carrier: str | None
    status: str | None
    # The last carrier scan, else the moment it was shipped (a parcel never scanned).
    last_seen_at: datetime | None
    expected_delivery: date | None
    customer_timezone: str | None
    customer_phone: str | None
    country: str | None


def unreported_shipments(
    session: Session,
    *,
    statuses: Iterable[str],
    source: str,
    event_type: str,
    seen_before: datetime | None = None,
    expected_before: date | None = None,
) -> list[WatchedShipment]:
    """Shipments of live orders in ``statuses`` that ``source`` has not reported as ``event_type``.

    ``seen_before`` keeps those not scanned (nor shipped) since then; ``expected_before``
    those with an expected delivery day before that date.
    """
    last_seen = func.coalesce(ShipmentRow.last_scan_at, ShipmentRow.shipped_at)
    reported = exists().where(
        EventRow.source == source,
        EventRow.type == event_type,
        EventRow.shipment_id == ShipmentRow.id,
    )
    query = (
        select(
            ShipmentRow.id,
            ShipmentRow.order_id,
            ShipmentRow.carrier,
            ShipmentRow.status,
            ShipmentRow.last_scan_at,
            ShipmentRow.shipped_at,
            ShipmentRow.expected_delivery,
            CustomerRow.timezone,
            CustomerRow.phone,
            OrderRow.shipping_address,
        )
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .outerjoin(CustomerRow, CustomerRow.id == OrderRow.customer_id)
        .where(
            ShipmentRow.status.in_(list(statuses)),
            OrderRow.status.in_(_LIVE_ORDER_STATUSES),
            ~reported,
        )
        .order_by(ShipmentRow.id)
    )
    if seen_before is not None:
        # A parcel nobody tracks (shipped without tracking number) has no scans to miss.
        query = query.where(
            last_seen.is_not(None),
            last_seen <= seen_before,
            ShipmentRow.tracking_number.is_not(None),
        )
    if expected_before is not None:
        query = query.where(
            ShipmentRow.expected_delivery.is_not(None),
            ShipmentRow.expected_delivery < expected_before,
        )
    out = []
    for row in session.execute(query):
        scans = [t for t in (row.last_scan_at, row.shipped_at) if t is not None]
        address = row.shipping_address or {}
        out.append(
            WatchedShipment(
                id=row.id,
                order_id=row.order_id,
                carrier=row.carrier,
                status=row.status,
                last_seen_at=max(scans) if scans else None,
                expected_delivery=row.expected_delivery,
                customer_timezone=row.timezone,
                customer_phone=row.phone,
                country=address.get("country"),
            )
        )
    return out
