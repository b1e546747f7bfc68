"""The overview's questions, each a count that links to the rows behind it: complaints this
week by category, parcels in trouble now by kind, what goes out in the next 24 hours by rule,
failures needing action. Each count has a listing query with the same filter, so a number and
the rows it links to cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from carebot.events import ShipmentStatus
from carebot.notifications import NotificationStatus as S
from carebot.store.cases import ACTIVE
from carebot.store.dashboard import is_scheduled
from carebot.store.models import CaseRow, NotificationRow, OrderRow, ShipmentRow

__all__ = [
    "TROUBLE_KINDS",
    "Trouble",
    "complaint_orders",
    "complaints_by_category",
    "due_by_rule",
    "due_rows",
    "failed_orders",
    "failures_needing_action",
    "trouble_counts",
    "trouble_orders",
]

# The kinds a parcel can be in trouble by, as the overview lists them ("at risk" from a
# disruption is worked out by the page from the disruptions in force).
TROUBLE_KINDS = ("stalled", "late", "failed_attempt", "exception")
_MOVING = (str(ShipmentStatus.IN_TRANSIT), str(ShipmentStatus.OUT_FOR_DELIVERY))
_VOID_ORDERS = ("cancelled", "refunded")
LISTING_LIMIT = 200


@dataclass(frozen=True)
class Trouble:
    """What "in trouble" means now: the window parcels are looked at in and the thresholds."""

    now: datetime
    today: date  # in the shop's zone: a parcel expected before today is late
    stall_after: timedelta
    since: datetime  # parcels shipped (or first seen) this long ago or since


def _trouble_filters(t: Trouble) -> dict[str, ColumnElement[bool]]:
    moving = ShipmentRow.status.in_(_MOVING)
    last_seen = func.coalesce(ShipmentRow.last_scan_at, ShipmentRow.shipped_at)
    return {
        "stalled": and_(moving, last_seen < t.now - t.stall_after),
        "late": and_(moving, ShipmentRow.expected_delivery < t.today),
        "failed_attempt": ShipmentRow.status == str(ShipmentStatus.FAILED_ATTEMPT),
        "exception": ShipmentRow.status == str(ShipmentStatus.EXCEPTION),
    }


def _open_parcels(t: Trouble) -> list[ColumnElement[bool]]:
    return [
        func.coalesce(ShipmentRow.shipped_at, ShipmentRow.created_at) >= t.since,
        ShipmentRow.delivered_at.is_(None),
        OrderRow.status.not_in(_VOID_ORDERS),
    ]


def trouble_counts(session: Session, trouble: Trouble) -> dict[str, int]:
    """Kind → parcels in that trouble now (one query; a parcel may be in two kinds)."""
    filters = _trouble_filters(trouble)
    columns = [func.sum(case((f, 1), else_=0)) for f in filters.values()]
    row = session.execute(
        select(*columns)
        .select_from(ShipmentRow)
        .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
        .where(*_open_parcels(trouble), or_(*filters.values()))
    ).one()
    return {kind: int(n or 0) for kind, n in zip(filters, row, strict=True)}


def trouble_orders(session: Session, trouble: Trouble, kind: str) -> list[str]:
    """The orders with a parcel in ``kind`` of trouble, longest-waiting first."""
    found = _trouble_filters(trouble).get(kind)
    if found is None:
        return []
    return list(
        session.scalars(
            select(ShipmentRow.order_id)
            .join(OrderRow, OrderRow.id == ShipmentRow.order_id)
            .where(*_open_parcels(trouble), found)
            .order_by(ShipmentRow.shipped_at, ShipmentRow.id)
            .limit(LISTING_LIMIT)
        )
    )


def complaints_by_category(session: Session, *, since: datetime) -> dict[str, tuple[int, int]]:
    """Category → (cases opened since ``since``, of which still unhandled)."""
    unhandled = func.sum(case((CaseRow.status.in_(ACTIVE), 1), else_=0))
    rows = session.execute(
        select(CaseRow.category, func.count(), unhandled)
        .where(CaseRow.opened_at >= since)
        .group_by(CaseRow.category)
    )
    return {category: (int(n), int(open_ or 0)) for category, n, open_ in rows}


def complaint_orders(
    session: Session, *, since: datetime, category: str, unhandled: bool
) -> list[str]:
    """The orders behind a complaints count, newest case first."""
    conditions = [CaseRow.opened_at >= since, CaseRow.category == category]
    if unhandled:
        conditions.append(CaseRow.status.in_(ACTIVE))
    return list(
        session.scalars(
            select(CaseRow.order_id)
            .where(*conditions)
            .order_by(CaseRow.opened_at.desc())
            .limit(LISTING_LIMIT)
        )
    )


def _due_filter(session: Session, now: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        is_scheduled(session),
        NotificationRow.due_at >= now,
        NotificationRow.due_at < until,
    ]


def due_by_rule(session: Session, *, now: datetime, until: datetime) -> dict[str, int]:
    """Rule → messages scheduled to go out from ``now`` until ``until``."""
    rows = session.execute(
        select(NotificationRow.rule_id, func.count())
        .where(*_due_filter(session, now, until))
        .group_by(NotificationRow.rule_id)
    )
    return dict(sorted((rule, int(n)) for rule, n in rows))


def due_rows(
    session: Session, *, now: datetime, until: datetime, rule_id: str | None, limit: int = 20
) -> list[NotificationRow]:
    """The messages behind ``due_by_rule`` (one rule, or all), soonest first."""
    conditions = _due_filter(session, now, until)
    if rule_id:
        conditions.append(NotificationRow.rule_id == rule_id)
    return list(
        session.scalars(
            select(NotificationRow)
            .where(*conditions)
            .order_by(NotificationRow.due_at, NotificationRow.id)
            .limit(limit)
        )
    )


def _needing_action(since: datetime) -> list[ColumnElement[bool]]:
    # A resend puts the row back on the schedule, so what is still failed needs a person.
    return [
        NotificationRow.status.in_([str(S.FAILED), str(S.UNDELIVERED)]),
        NotificationRow.updated_at >= since,
        NotificationRow.audience != "merchant",
    ]


def failures_needing_action(session: Session, *, since: datetime) -> int:
    """Customer messages failed or undelivered since ``since`` and not resent."""
    found = session.scalar(
        select(func.count()).select_from(NotificationRow).where(*_needing_action(since))
    )
    return int(found or 0)


def failed_orders(session: Session, *, since: datetime) -> list[str]:
    """The orders behind ``failures_needing_action``, latest failure first."""
    rows = session.scalars(
        select(NotificationRow.order_id)
        .where(*_needing_action(since), NotificationRow.order_id.is_not(None))
        .order_by(NotificationRow.updated_at.desc())
        .limit(LISTING_LIMIT)
    )
    return [order_id for order_id in rows if order_id is not None]
