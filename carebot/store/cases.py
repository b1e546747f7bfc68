"""Service-recovery cases: opening, finding, stepping and listing them."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from carebot.store.models import CaseRow, EventRow, LineItemRow, NotificationRow, OrderRow

__all__ = [
    "ACTIVE",
    "active_case",
    "active_case_for",
    "active_cases",
    "case_json",
    "cases_by_bucket",
    "event_recorded",
    "get_case",
    "latest_case",
    "list_cases",
    "next_deadline",
    "note_step",
    "open_case",
    "order_facts",
    "overdue_cases",
]

ACTIVE = ("open", "contacted")


def case_json(case: CaseRow, *, zone: tzinfo | None = None) -> dict[str, Any]:
    """A case as the API, the events and the templates see it (ISO 8601 instants, in UTC or
    in ``zone``); the history keeps the instants as recorded."""

    def iso(instant: datetime | None) -> str | None:
        if instant is None:
            return None
        return (instant.astimezone(zone) if zone else instant).isoformat()

    return {
        "id": case.id,
        "order_id": case.order_id,
        "customer_id": case.customer_id,
        "products": case.products,
        "category": case.category,
        "text": case.text,
        "status": case.status,
        "step": case.step,
        "opened_at": iso(case.opened_at),
        "deadline_at": iso(case.deadline_at),
        "overdue_at": iso(case.overdue_at),
        "contacted_at": iso(case.contacted_at),
        "resolved_at": iso(case.resolved_at),
        "recovered": case.recovered,
        "history": [
            {**step, "at": iso(datetime.fromisoformat(step["at"]))} for step in case.history
        ],
    }


def order_facts(session: Session, order_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The order's customer id and its products (sku, title), in order."""
    customer_id = session.scalar(select(OrderRow.customer_id).where(OrderRow.id == order_id))
    products = [
        {"sku": sku, "title": title}
        for sku, title in session.execute(
            select(LineItemRow.sku, LineItemRow.title)
            .where(LineItemRow.order_id == order_id)
            .order_by(LineItemRow.position)
        )
    ]
    return customer_id, products


def get_case(session: Session, case_id: int) -> CaseRow | None:
    return session.get(CaseRow, case_id)


def active_case(session: Session, order_id: str) -> CaseRow | None:
    """The order's open or contacted case (at most one)."""
    return session.scalars(
        select(CaseRow).where(CaseRow.order_id == order_id, CaseRow.status.in_(ACTIVE))
    ).first()


def active_case_for(
    session: Session, *, channel: str, address: str, since: datetime
) -> CaseRow | None:
    """The active case of the latest order whose customer was written to at ``address``."""
    order_id = session.scalar(
        select(NotificationRow.order_id)
        .join(CaseRow, CaseRow.order_id == NotificationRow.order_id)
        .where(
            NotificationRow.channel == channel,
            NotificationRow.recipient == address,
            NotificationRow.sent_at >= since,
            CaseRow.status.in_(ACTIVE),
        )
        .order_by(NotificationRow.sent_at.desc())
        .limit(1)
    )
    return active_case(session, order_id) if order_id else None


def latest_case(session: Session, order_id: str) -> CaseRow | None:
    return session.scalars(
        select(CaseRow).where(CaseRow.order_id == order_id).order_by(CaseRow.id.desc()).limit(1)
    ).first()


def open_case(
    session: Session,
    *,
    order_id: str,
    category: str,
    text: str,
    at: datetime,
    deadline: datetime,
    who: str,
    note: str,
) -> CaseRow:
    customer_id, products = order_facts(session, order_id)
    case = CaseRow(
        order_id=order_id,
        customer_id=customer_id,
        products=products,
        category=category,
        text=text,
        opened_at=at,
        status="open",
        step=0,
        deadline_at=deadline,
        history=[{"at": at.isoformat(), "who": who, "status": "open", "note": note}],
        updated_at=at,
    )
    session.add(case)
    session.flush()
    return case


def note_step(case: CaseRow, *, at: datetime, who: str, status: str, note: str) -> None:
    """Append one step to the case's history (a new list, so the change is seen)."""
    entry = {"at": at.isoformat(), "who": who, "status": status, "note": note}
    case.history = [*case.history, entry]
    case.updated_at = at


# An active case whose current step has not been alerted yet.
_UNALERTED = (
    CaseRow.status.in_(ACTIVE),
    or_(CaseRow.alerted_step.is_(None), CaseRow.alerted_step < CaseRow.step),
)


def overdue_cases(session: Session, *, now: datetime) -> list[CaseRow]:
    """Active cases whose current step is past its deadline and not alerted yet."""
    return list(
        session.scalars(
            select(CaseRow)
            .where(*_UNALERTED, CaseRow.deadline_at <= now)
            .order_by(CaseRow.deadline_at, CaseRow.id)
        )
    )


def next_deadline(session: Session) -> datetime | None:
    """The earliest deadline a scan has still to alert about."""
    return session.scalar(select(func.min(CaseRow.deadline_at)).where(*_UNALERTED))


def event_recorded(session: Session, *, source: str, event_id: str) -> bool:
    return (
        session.scalar(
            select(EventRow.id).where(EventRow.source == source, EventRow.event_id == event_id)
        )
        is not None
    )


def active_cases(session: Session, *, limit: int = 50) -> list[CaseRow]:
    """Open and contacted cases, the nearest deadline first."""
    return list(
        session.scalars(
            select(CaseRow)
            .where(CaseRow.status.in_(ACTIVE))
            .order_by(CaseRow.deadline_at, CaseRow.id)
            .limit(limit)
        )
    )


def cases_by_bucket(session: Session, *, bounds: list[datetime]) -> dict[str, list[int]]:
    """Cases opened per [bounds[i], bounds[i+1]) interval, by category."""
    from carebot.store.dashboard import bucketed

    counts: dict[str, list[int]] = {}
    if len(bounds) < 2:
        return counts
    bucket = bucketed(CaseRow.opened_at, bounds)
    rows = session.execute(
        select(CaseRow.category, bucket, func.count())
        .where(CaseRow.opened_at >= bounds[0], CaseRow.opened_at < bounds[-1])
        .group_by(CaseRow.category, bucket)
    )
    for category, index, count in rows:
        if index >= 0:
            counts.setdefault(category, [0] * (len(bounds) - 1))[index] += count
    return dict(sorted(counts.items()))


def list_cases(
    session: Session,
    *,
    status: str | None = None,
    order_id: str | None = None,
    limit: int = 100,
) -> list[CaseRow]:
    """Cases, newest first."""
    query = select(CaseRow).order_by(CaseRow.opened_at.desc(), CaseRow.id.desc()).limit(limit)
    if status:
        query = query.where(CaseRow.status == status)
    if order_id:
        query = query.where(CaseRow.order_id == order_id)
    return list(session.scalars(query))
