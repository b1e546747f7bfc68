"""Service-recovery measures: cases by category and product, response times, recovery rate."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from carebot.store.models import (
    CaseRow,
    FeedbackRow,
    LineItemRow,
    NotificationRow,
    OrderRow,
    ShipmentRow,
)
from carebot.store.schedule import IS_SCHEDULED

__all__ = ["CaseReport", "case_report", "scheduled_between", "stalled_shipments"]

# A next score this high means the customer is happy again.
HAPPY_SCORE = 4


@dataclass
class CaseReport:
    cases: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    # [{"sku", "title", "cases", "by_category"}], most cases first.
    by_product: list[dict[str, Any]] = field(default_factory=list)
    median_first_contact_hours: float | None = None
    median_resolution_hours: float | None = None
    past_deadline: int = 0
    # Cases not dismissed, and of them those whose customer came back happy.
    recoverable: int = 0
    recovered: int = 0

    @property
    def past_deadline_share(self) -> float | None:
        return round(self.past_deadline / self.cases, 4) if self.cases else None

    @property
    def recovery_rate(self) -> float | None:
        return round(self.recovered / self.recoverable, 4) if self.recoverable else None

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "by_status": self.by_status,
            "by_category": self.by_category,
            "by_product": self.by_product,
            "median_first_contact_hours": self.median_first_contact_hours,
            "median_resolution_hours": self.median_resolution_hours,
            "past_deadline": self.past_deadline,
            "past_deadline_share": self.past_deadline_share,
            "recoverable": self.recoverable,
            "recovered": self.recovered,
            "recovery_rate": self.recovery_rate,
        }


def _hours_between(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        # Stored as naive UTC text; julianday is in days.
        return (func.julianday(later) - func.julianday(earlier)) * 24.0
    return func.extract("epoch", later - earlier) / 3600.0


def _plus_days(session: Session, column: Any, days: int) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        # The same naive UTC text the column holds, so the comparison stays lexical.
        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{days} days")
    shifted: ColumnElement[Any] = column + func.make_interval(0, 0, 0, days)
    return shifted


def case_report(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    recovery_days: int = 60,
) -> CaseReport:
    """Measures over the cases opened in [since, until), computed in the database.

    A case counts as recovered when its customer's next score after it opened is 4 or 5, or
    when they order again within ``recovery_days`` of it; dismissed cases do not count.
    """
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(CaseRow.opened_at >= since)
    if until is not None:
        where.append(CaseRow.opened_at < until)
    report = CaseReport()
    contact: list[float] = []
    resolution: list[float] = []
    # One pass over the period's cases, as plain numbers (no datetime objects to build).
    for status, category, overdue, to_contact, to_resolve in session.execute(
        select(
            CaseRow.status,
            CaseRow.category,
            CaseRow.overdue_at.is_not(None),
            _hours_between(session, CaseRow.contacted_at, CaseRow.opened_at),
            _hours_between(session, CaseRow.resolved_at, CaseRow.opened_at),
        ).where(*where)
    ):
        report.cases += 1
        report.past_deadline += int(bool(overdue))
        report.by_status[status] = report.by_status.get(status, 0) + 1
        report.by_category[category] = report.by_category.get(category, 0) + 1
        if to_contact is not None:
            contact.append(float(to_contact))
        if to_resolve is not None:
            resolution.append(float(to_resolve))
    if not report.cases:
        return report
    report.median_first_contact_hours = _median(contact)
    report.median_resolution_hours = _median(resolution)
    products: dict[str, dict[str, Any]] = {}
    for sku, title, category, count in session.execute(
        select(LineItemRow.sku, LineItemRow.title, CaseRow.category, func.count())
        .join(LineItemRow, LineItemRow.order_id == CaseRow.order_id)
        .where(*where)
        .group_by(LineItemRow.sku, LineItemRow.title, CaseRow.category)
    ):
        key = sku or f"title:{title}"
        product = products.setdefault(
            key, {"sku": sku, "title": title, "cases": 0, "by_category": {}}
        )
        product["cases"] += count
        product["by_category"][category] = product["by_category"].get(category, 0) + count
    report.by_product = sorted(
        products.values(), key=lambda p: (-p["cases"], p["sku"] or p["title"] or "")
    )
    report.recoverable, report.recovered = _recovered(session, where, recovery_days)
    return report


def _median(hours: Sequence[float | None]) -> float | None:
    values = [h for h in hours if h is not None]
    return round(statistics.median(values), 2) if values else None


def _recovered(
    session: Session, where: list[ColumnElement[bool]], recovery_days: int
) -> tuple[int, int]:
    """(cases not dismissed, those whose customer came back happy or ordered again).

    Joins, not a subquery per case: only the cases with a later score or order come back.
    """
    kept = [*where, CaseRow.status != "dismissed"]
    recoverable = session.scalar(select(func.count()).select_from(CaseRow).where(*kept)) or 0
    first: dict[int, tuple[datetime, int, int]] = {}
    for match in (
        FeedbackRow.customer_id == CaseRow.customer_id,
        and_(CaseRow.customer_id.is_(None), FeedbackRow.order_id == CaseRow.order_id),
    ):
        for case_id, received_at, feedback_id, score in session.execute(
            select(CaseRow.id, FeedbackRow.received_at, FeedbackRow.id, FeedbackRow.score)
            .join(
                FeedbackRow,
                and_(
                    match,
                    FeedbackRow.received_at > CaseRow.opened_at,
                    FeedbackRow.score.is_not(None),
                ),
            )
            .where(*kept)
        ):
            seen = first.get(case_id)
            if seen is None or (received_at, feedback_id) < seen[:2]:
                first[case_id] = (received_at, feedback_id, score or 0)
    happy = {case_id for case_id, (_, _, score) in first.items() if score >= HAPPY_SCORE}
    placed = func.coalesce(OrderRow.placed_at, OrderRow.created_at)
    again = session.scalars(
        select(CaseRow.id)
        .join(
            OrderRow,
            and_(
                OrderRow.customer_id == CaseRow.customer_id,
                OrderRow.id != CaseRow.order_id,  # again: another order than the complaint's
                placed > CaseRow.opened_at,
                placed <= _plus_days(session, CaseRow.opened_at, recovery_days),
            ),
        )
        .where(*kept)
        .distinct()
    )
    return int(recoverable), len(happy | set(again))


def stalled_shipments(
    session: Session, *, now: datetime, stall_after: timedelta, limit: int = 20
) -> tuple[int, list[dict[str, Any]]]:
    """Parcels on their way with no scan (nor shipping) for ``stall_after``: count, oldest."""
    last_seen = func.coalesce(ShipmentRow.last_scan_at, ShipmentRow.shipped_at)
    where = (
        ShipmentRow.status.in_(("in_transit", "out_for_delivery")),
        last_seen <= now - stall_after,
    )
    total = session.scalar(select(func.count()).select_from(ShipmentRow).where(*where)) or 0
    oldest = [
        {
            "shipment_id": ident,
            "order_id": order_id,
            "carrier": carrier,
            "tracking_number": tracking,
            "last_seen_at": seen.isoformat() if seen else None,
        }
        for ident, order_id, carrier, tracking, seen in session.execute(
            select(
                ShipmentRow.id,
                ShipmentRow.order_id,
                ShipmentRow.carrier,
                ShipmentRow.tracking_number,
                last_seen,
            )
            .where(*where)
            .order_by(last_seen, ShipmentRow.id)
            .limit(limit)
        )
    ]
    return total, oldest


def scheduled_between(session: Session, *, start: datetime, end: datetime) -> dict[str, int]:
    """Scheduled messages due in [start, end), by rule."""
    return {
        rule_id: count
        for rule_id, count in session.execute(
            select(NotificationRow.rule_id, func.count())
            .where(IS_SCHEDULED, NotificationRow.due_at >= start, NotificationRow.due_at < end)
            .group_by(NotificationRow.rule_id)
            .order_by(NotificationRow.rule_id)
        )
    }
