"""Read-only summaries of the schedule, for ``carebot status`` and the admin API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store import provider_health
from carebot.store.models import NotificationRow
from carebot.store.provider_health import Outage
from carebot.store.schedule import IS_SCHEDULED

__all__ = ["StatusSummary", "status_summary"]


@dataclass(frozen=True)
class StatusSummary:
    by_status: dict[str, int]
    by_rule: dict[str, dict[str, int]]
    next_due: datetime | None
    oldest_overdue: datetime | None
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    # Providers whose circuit is open, as the sending processes recorded it.
    outages: list[Outage] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def as_json(self) -> dict[str, Any]:
        """The summary as ``carebot status --json`` prints it (ISO 8601 instants, UTC)."""
        return {
            "total": self.total,
            "by_status": self.by_status,
            "by_rule": self.by_rule,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "oldest_overdue": self.oldest_overdue.isoformat() if self.oldest_overdue else None,
            "failures_by_reason": self.failures_by_reason,
            "outages": [outage.as_json() for outage in self.outages],
        }


def status_summary(session: Session, *, now: datetime) -> StatusSummary:
    """Counts by status and by rule, the next due and oldest overdue row, failure reasons."""
    by_status: dict[str, int] = {}
    by_rule: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(NotificationRow.rule_id, NotificationRow.status, func.count()).group_by(
            NotificationRow.rule_id, NotificationRow.status
        )
    )
    for rule_id, status, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        by_rule.setdefault(rule_id, {})[status] = count
    scheduled = IS_SCHEDULED
    next_due = session.scalar(
        select(func.min(NotificationRow.due_at)).where(scheduled, NotificationRow.due_at > now)
    )
    oldest = session.scalar(
        select(func.min(NotificationRow.due_at)).where(scheduled, NotificationRow.due_at <= now)
    )
    failures = {
        reason or "(none)": count
        for reason, count in session.execute(
            select(NotificationRow.reason, func.count())
            .where(NotificationRow.status == str(S.FAILED))
            .group_by(NotificationRow.reason)
        )
    }
    return StatusSummary(
        by_status, by_rule, next_due, oldest, failures, provider_health.outages(session, now=now)
    )
