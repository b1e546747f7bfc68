"""Housekeeping: forget what is old and finished, so the database stays small and fast."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from carebot.notifications import TERMINAL_STATUSES
from carebot.store.models import EventRow, NotificationRow, RejectedPayloadRow

__all__ = ["PurgeReport", "purge_before"]


@dataclass(frozen=True)
class PurgeReport:
    notifications: int
    events: int
    rejected_payloads: int


def purge_before(session: Session, *, cutoff: datetime) -> PurgeReport:
    """Delete finished notifications, events and rejected payloads last touched before ``cutoff``.

    Pending notifications are never touched, however old; customers, orders and shipments stay
    (they are the history that transit times and run-out forecasts learn from).
    """
    notifications = session.execute(
        delete(NotificationRow)
        .where(
            NotificationRow.status.in_([str(s) for s in TERMINAL_STATUSES]),
            NotificationRow.updated_at < cutoff,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    events = session.execute(
        delete(EventRow)
        .where(EventRow.received_at < cutoff)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    rejected = session.execute(
        delete(RejectedPayloadRow)
        .where(RejectedPayloadRow.received_at < cutoff)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return PurgeReport(notifications, events, rejected)
