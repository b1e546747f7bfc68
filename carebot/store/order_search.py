"""Finding orders for the dashboard: one order's whole timeline, search, listings by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from carebot.store.models import (
    CustomerRow,
    EventRow,
    FeedbackRow,
    NotificationRow,
    OrderRow,
    ShipmentRow,
)

__all__ = ["Timeline", "find_orders", "order_exists", "order_timeline", "orders_by_ids"]


@dataclass(frozen=True)
class Timeline:
    order: OrderRow
    events: list[EventRow]
    notifications: list[NotificationRow]
    feedback: list[FeedbackRow] = field(default_factory=list)


def order_timeline(session: Session, order_id: str) -> Timeline | None:
    """Everything carebot knows and did about one order, oldest first; None if unknown."""
    order = session.get(OrderRow, order_id)
    if order is None:
        return None
    shipment_ids = select(ShipmentRow.id).where(ShipmentRow.order_id == order_id)
    events = session.scalars(
        select(EventRow)
        .where(
            or_(
                EventRow.order_id == order_id,
                and_(EventRow.order_id.is_(None), EventRow.shipment_id.in_(shipment_ids)),
            )
        )
        .order_by(EventRow.occurred_at, EventRow.id)
        .limit(500)
    ).all()
    notifications = session.scalars(
        select(NotificationRow)
        .where(NotificationRow.order_id == order_id)
        .order_by(NotificationRow.due_at, NotificationRow.id)
        .limit(500)
    ).all()
    feedback = session.scalars(
        select(FeedbackRow).where(FeedbackRow.order_id == order_id).order_by(FeedbackRow.id)
    ).all()
    return Timeline(order, list(events), list(notifications), list(feedback))


def order_exists(session: Session, order_id: str) -> bool:
    """Whether carebot knows an order with this id."""
    return session.scalar(select(OrderRow.id).where(OrderRow.id == order_id)) is not None


def find_orders(
    session: Session,
    *,
    phones: Sequence[str] = (),
    email: str | None = None,
    order_part: str | None = None,
    tracking: str | None = None,
    limit: int = 50,
) -> list[OrderRow]:
    """The newest orders matching any of: a customer phone spelt one of ``phones``, a customer
    email address, part of the order id, a parcel's tracking number."""
    conditions: list[ColumnElement[bool]] = []
    customer_conditions: list[ColumnElement[bool]] = []
    if phones:
        customer_conditions.append(CustomerRow.phone.in_(sorted(set(phones))))
    if email:
        # Stored as given; most sources send lower case, so try both spellings on the index.
        customer_conditions.append(CustomerRow.email.in_({email, email.lower()}))
    if customer_conditions:
        customers = select(CustomerRow.id).where(or_(*customer_conditions))
        conditions.append(OrderRow.customer_id.in_(customers))
    if order_part:
        escaped = order_part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(OrderRow.id.like(f"%{escaped}%", escape="\\"))
    if tracking:
        parcels = select(ShipmentRow.order_id).where(
            ShipmentRow.tracking_number.in_({tracking, tracking.upper()})
        )
        conditions.append(OrderRow.id.in_(parcels))
    if not conditions:
        return []
    return list(
        session.scalars(
            select(OrderRow)
            .where(or_(*conditions))
            .order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
            .limit(limit)
        )
    )


def orders_by_ids(
    session: Session, order_ids: Sequence[str], *, limit: int = 200
) -> list[OrderRow]:
    """These orders, newest first."""
    if not order_ids:
        return []
    return list(
        session.scalars(
            select(OrderRow)
            .where(OrderRow.id.in_(list(order_ids)[:limit]))
            .order_by(OrderRow.created_at.desc(), OrderRow.id.desc())
        )
    )
