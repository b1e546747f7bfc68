"""Results per rule over a period: sent, delivered, failed, replies, average score, and for
marketing reminders (restock, stock-up) the reorders attributed to them — "is this worth it?".

A reorder is attributed to a reminder when the same customer orders the same SKU within the
window after the reminder was sent (the first such order; a reminder counts once).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.models import FeedbackRow, LineItemRow, NotificationRow, OrderRow

__all__ = ["RuleResult", "reminder_sku", "results_by_rule"]

_LEFT = [str(S.SENT), str(S.DELIVERED), str(S.UNDELIVERED)]
_FAILED = [str(S.FAILED), str(S.UNDELIVERED)]
# Reminders read per period for attribution; past this the count is a lower bound.
MAX_REMINDERS = 20_000


@dataclass(frozen=True)
class RuleResult:
    rule_id: str
    sent: int
    delivered: int
    failed: int
    replies: int
    average_score: float | None
    # None for rules that are not marketing reminders.
    reorders: int | None = None


def reminder_sku(context: dict[str, Any] | None) -> str | None:
    """The product a restock or stock-up reminder was about."""
    for key in ("restock", "disruption"):
        part = (context or {}).get(key)
        if isinstance(part, dict) and isinstance(part.get("sku"), str):
            return str(part["sku"])
    return None


def _reorders(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    rule_ids: Collection[str],
    window: timedelta,
) -> dict[str, int]:
    context = NotificationRow.context
    # The product the reminder was about, read in the database (see ``reminder_sku``).
    product_of = func.coalesce(
        context[("restock", "sku")].as_string(), context[("disruption", "sku")].as_string()
    )
    reminders = session.execute(
        select(
            NotificationRow.rule_id,
            NotificationRow.customer_id,
            NotificationRow.sent_at,
            product_of,
        )
        .where(
            NotificationRow.rule_id.in_(list(rule_ids)),
            NotificationRow.status.in_([str(S.SENT), str(S.DELIVERED)]),
            NotificationRow.sent_at >= since,
            NotificationRow.sent_at < until,
        )
        .limit(MAX_REMINDERS)
    ).all()
    customers = {c for _, c, _, _ in reminders if c}
    orders: dict[tuple[str, str], list[datetime]] = {}
    if customers:
        rows = session.execute(
            select(OrderRow.customer_id, LineItemRow.sku, OrderRow.placed_at, OrderRow.created_at)
            .join(LineItemRow, LineItemRow.order_id == OrderRow.id)
            .where(
                OrderRow.customer_id.in_(sorted(customers)),
                OrderRow.created_at >= since,
                OrderRow.created_at < until + window,
            )
        )
        for customer, sku, placed, created in rows:
            if customer and sku:
                orders.setdefault((customer, sku), []).append(placed or created)
    found = dict.fromkeys(rule_ids, 0)
    for rule_id, customer, sent_at, product in reminders:
        if not customer or not product or sent_at is None:
            continue
        if any(sent_at < at <= sent_at + window for at in orders.get((customer, product), [])):
            found[rule_id] += 1
    return found


def results_by_rule(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    marketing: Collection[str],
    window: timedelta,
) -> list[RuleResult]:
    """One result per rule with messages due in ``[since, until)``."""
    by_status: dict[str, dict[str, int]] = {}
    for rule, status, n in session.execute(
        select(NotificationRow.rule_id, NotificationRow.status, func.count())
        .where(NotificationRow.due_at >= since, NotificationRow.due_at < until)
        .group_by(NotificationRow.rule_id, NotificationRow.status)
    ):
        by_status.setdefault(rule, {})[status] = int(n)
    counts = [
        (
            rule,
            sum(statuses.get(s, 0) for s in _LEFT),
            statuses.get(str(S.DELIVERED), 0),
            sum(statuses.get(s, 0) for s in _FAILED),
        )
        for rule, statuses in by_status.items()
    ]
    replies = {
        rule: (int(n), float(avg) if avg is not None else None)
        for rule, n, avg in session.execute(
            select(NotificationRow.rule_id, func.count(FeedbackRow.id), func.avg(FeedbackRow.score))
            .join(NotificationRow, NotificationRow.id == FeedbackRow.notification_id)
            .where(
                NotificationRow.due_at >= since,
                NotificationRow.due_at < until,
                # A reply comes after its request went out, so after it was due: read from
                # the replies of the period on, not from every message of it.
                FeedbackRow.received_at >= since,
            )
            .group_by(NotificationRow.rule_id)
        )
    }
    reorders = _reorders(session, since=since, until=until, rule_ids=marketing, window=window)
    results = []
    for rule, sent, delivered, failed in counts:
        n, avg = replies.get(rule, (0, None))
        results.append(
            RuleResult(
                rule_id=rule,
                sent=int(sent or 0),
                delivered=int(delivered or 0),
                failed=int(failed or 0),
                replies=n,
                average_score=avg,
                reorders=reorders.get(rule) if rule in marketing else None,
            )
        )
    return sorted(results, key=lambda r: r.rule_id)
