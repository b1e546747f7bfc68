"""Service-recovery measures: cases by category and product, response times, recovery rate."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
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
    """Measures over the cases opened in [since, until), aggregated in the database.

    A case counts as recovered when its customer's next score after it opened is 4 or 5, or
    when they order again within ``recovery_days`` of it; dismissed cases do not count.
    """
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(CaseRow.opened_at >= since)
    if until is not None:
        where.append(CaseRow.opened_at < until)
    report = CaseReport()
    for status, category, count, overdue in session.execute(
        select(
            CaseRow.status,
            CaseRow.category,
            func.count(),
            func.count(CaseRow.overdue_at),
        )
        .where(*where)
        .group_by(CaseRow.status, CaseRow.category)
    ):
        report.cases += count
        report.past_deadline += int(overdue or 0)
        report.by_status[status] = report.by_status.get(status, 0) + count
        report.by_category[category] = report.by_category.get(category, 0) + count
    if not report.cases:
        return report
    report.median_first_contact_hours = _median(
        session, _hours_between(session, CaseRow.contacted_at, CaseRow.opened_at), where
    )
    report.median_resolution_hours = _median(
        session, _hours_between(session, CaseRow.resolved_at, CaseRow.opened_at), where
    )
    report.by_product = _by_product(session, where)
    report.recoverable, report.recovered = _recovered(session, where, recovery_days)
    return report


def _by_product(session: Session, where: list[ColumnElement[bool]]) -> list[dict[str, Any]]:
    """[{"sku", "title", "cases", "by_category"}], most cases first (one grouped query)."""
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
    return sorted(products.values(), key=lambda p: (-p["cases"], p["sku"] or p["title"] or ""))


def _median(
    session: Session, hours: ColumnElement[Any], where: list[ColumnElement[bool]]
) -> float | None:
    """The median of ``hours`` over the cases that have it: the middle one or two rows of the
    sorted values, read by offset (no rows leave the database but those)."""
    known = [*where, hours.is_not(None)]
    count = int(session.scalar(select(func.count()).select_from(CaseRow).where(*known)) or 0)
    if not count:
        return None
    middle = session.scalars(
        select(hours)
        .where(*known)
        .order_by(hours)
        .offset((count - 1) // 2)
        .limit(1 if count % 2 else 2)
    ).all()
    return round(statistics.fmean(float(h) for h in middle), 2)


def _first_score(match: ColumnElement[bool]) -> Any:
    """The score of the first scored reply after the case opened, matched by ``match``."""
    return (
        select(FeedbackRow.score)
        .where(match, FeedbackRow.received_at > CaseRow.opened_at, FeedbackRow.score.is_not(None))
        .order_by(FeedbackRow.received_at, FeedbackRow.id)
        .limit(1)
        .correlate(CaseRow)
        .scalar_subquery()
    )


def _recovered(
    session: Session, where: list[ColumnElement[bool]], recovery_days: int
) -> tuple[int, int]:
    """(cases not dismissed, those whose customer came back happy or ordered again).

    Counted in the database: per case, one index probe for the next score (by customer, else
    by order) and one for another order in the window.
    """
    kept = [*where, CaseRow.status != "dismissed"]
    recoverable = session.scalar(select(func.count()).select_from(CaseRow).where(*kept)) or 0
    placed = func.coalesce(OrderRow.placed_at, OrderRow.created_at)
    ordered_again = (
        select(OrderRow.id)
        .where(
            OrderRow.customer_id == CaseRow.customer_id,
            OrderRow.id != CaseRow.order_id,  # again: another order than the complaint's
            placed > CaseRow.opened_at,
            placed <= _plus_days(session, CaseRow.opened_at, recovery_days),
        )
        .correlate(CaseRow)
        .exists()
    )
    by_customer = session.scalar(
        select(func.count())
        .select_from(CaseRow)
        .where(
            *kept,
            CaseRow.customer_id.is_not(None),
            or_(
                _first_score(FeedbackRow.customer_id == CaseRow.customer_id) >= HAPPY_SCORE,
                ordered_again,
            ),
        )
    )
    by_order = session.scalar(
        select(func.count())
        .select_from(CaseRow)
        .where(
            *kept,
            CaseRow.customer_id.is_(None),
            _first_score(FeedbackRow.order_id == CaseRow.order_id) >= HAPPY_SCORE,
        )
    )
    return int(recoverable), int(by_customer or 0) + int(by_order or 0)


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
