"""Service-recovery measures: cases by category and product, response times, recovery rate."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carebot.store.models import CaseRow, FeedbackRow, NotificationRow, OrderRow, ShipmentRow
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


def _hours(spans: list[timedelta]) -> float | None:
    if not spans:
        return None
    return round(statistics.median(s.total_seconds() for s in spans) / 3600, 2)


def case_report(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    recovery_days: int = 60,
) -> CaseReport:
    """Measures over the cases opened in [since, until).

    A case counts as recovered when its customer's next score after it opened is 4 or 5, or
    when they order again within ``recovery_days`` of it; dismissed cases do not count.
    """
    columns = (
        CaseRow.id,
        CaseRow.order_id,
        CaseRow.customer_id,
        CaseRow.products,
        CaseRow.category,
        CaseRow.status,
        CaseRow.opened_at,
        CaseRow.contacted_at,
        CaseRow.resolved_at,
        CaseRow.overdue_at,
    )
    query = select(*columns).order_by(CaseRow.opened_at, CaseRow.id)
    if since is not None:
        query = query.where(CaseRow.opened_at >= since)
    if until is not None:
        query = query.where(CaseRow.opened_at < until)
    rows = session.execute(query).all()
    report = CaseReport(cases=len(rows))
    if not rows:
        return report
    first = min(r.opened_at for r in rows)
    customers = {r.customer_id for r in rows if r.customer_id}
    orders = {r.order_id for r in rows}
    # Scores after the first case opened, by customer (else by order), oldest first.
    scores: dict[str, list[tuple[datetime, int]]] = {}
    for customer_id, order_id, score, received_at in session.execute(
        select(
            FeedbackRow.customer_id,
            FeedbackRow.order_id,
            FeedbackRow.score,
            FeedbackRow.received_at,
        )
        .where(
            FeedbackRow.received_at > first,
            FeedbackRow.score.is_not(None),
            FeedbackRow.customer_id.in_(customers) | FeedbackRow.order_id.in_(orders),
        )
        .order_by(FeedbackRow.received_at, FeedbackRow.id)
    ):
        keys = [f"o:{order_id}"] + ([f"c:{customer_id}"] if customer_id else [])
        for key in keys:
            scores.setdefault(key, []).append((received_at, score or 0))
    placed: dict[str, list[datetime]] = {}
    if customers:
        for customer_id, placed_at in session.execute(
            select(
                OrderRow.customer_id, func.coalesce(OrderRow.placed_at, OrderRow.created_at)
            ).where(OrderRow.customer_id.in_(customers))
        ):
            placed.setdefault(customer_id or "", []).append(placed_at)
    contact: list[timedelta] = []
    resolution: list[timedelta] = []
    products: dict[str, dict[str, Any]] = {}
    window = timedelta(days=recovery_days)
    for row in rows:
        report.by_status[row.status] = report.by_status.get(row.status, 0) + 1
        report.by_category[row.category] = report.by_category.get(row.category, 0) + 1
        for item in row.products or []:
            key = item.get("sku") or f"title:{item.get('title')}"
            product = products.setdefault(
                key,
                {"sku": item.get("sku"), "title": item.get("title"), "cases": 0, "by_category": {}},
            )
            product["cases"] += 1
            product["by_category"][row.category] = product["by_category"].get(row.category, 0) + 1
        if row.contacted_at is not None:
            contact.append(row.contacted_at - row.opened_at)
        if row.resolved_at is not None:
            resolution.append(row.resolved_at - row.opened_at)
        report.past_deadline += int(row.overdue_at is not None)
        if row.status == "dismissed":
            continue
        report.recoverable += 1
        key = f"c:{row.customer_id}" if row.customer_id else f"o:{row.order_id}"
        later = [score for at, score in scores.get(key, []) if at > row.opened_at]
        again = any(
            row.opened_at < at <= row.opened_at + window
            for at in placed.get(row.customer_id or "", [])
        )
        report.recovered += int(bool(later and later[0] >= HAPPY_SCORE) or again)
    report.median_first_contact_hours = _hours(contact)
    report.median_resolution_hours = _hours(resolution)
    report.by_product = sorted(
        products.values(), key=lambda p: (-p["cases"], p["sku"] or p["title"] or "")
    )
    return report


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
