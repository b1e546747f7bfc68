"""What the admin API does to the schedule: list, cancel and resend notifications."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.models import NotificationRow

__all__ = ["Outcome", "cancel_notification", "list_notifications", "resend_notification"]

# What may be sent again by hand: nothing that reached, or may have reached, the customer.
RESENDABLE = (S.FAILED, S.EXPIRED, S.UNDELIVERED)
CANCELLABLE = (S.SCHEDULED, S.CLAIMED)
RESEND_VALIDITY = timedelta(days=1)


class Outcome(enum.StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"


def _as_dict(row: NotificationRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "rule": row.rule_id,
        "channel": row.channel,
        "to": row.recipient,
        "order_id": row.order_id,
        "customer_id": row.customer_id,
        "status": row.status,
        "reason": row.reason,
        "due_at": row.due_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "subject": row.subject,
        "body": row.body,
    }


def list_notifications(
    session: Session,
    *,
    order_id: str | None = None,
    customer_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Notifications of an order and/or a customer, newest due first."""
    conditions = []
    if order_id is not None:
        conditions.append(NotificationRow.order_id == order_id)
    if customer_id is not None:
        conditions.append(NotificationRow.customer_id == customer_id)
    rows = session.scalars(
        select(NotificationRow)
        .where(or_(*conditions) if conditions else NotificationRow.id.is_(None))
        .order_by(NotificationRow.due_at.desc(), NotificationRow.id.desc())
        .limit(limit)
    )
    return [_as_dict(row) for row in rows]


def _change(
    session: Session, notification_id: int, allowed: tuple[S, ...], values: dict[str, Any]
) -> Outcome:
    result = session.execute(
        update(NotificationRow)
        .where(
            NotificationRow.id == notification_id,
            NotificationRow.status.in_([str(s) for s in allowed]),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return Outcome.DONE
    exists = session.scalar(select(NotificationRow.id).where(NotificationRow.id == notification_id))
    return Outcome.CONFLICT if exists is not None else Outcome.NOT_FOUND


def cancel_notification(
    session: Session, *, notification_id: int, who: str, now: datetime
) -> Outcome:
    """Cancel a pending notification, recording who did it and when."""
    return _change(
        session,
        notification_id,
        CANCELLABLE,
        {
            "status": str(S.CANCELLED),
            "reason": f"cancelled by {who} at {now.isoformat()}",
            "locked_by": None,
            "locked_until": None,
            "updated_at": now,
        },
    )


def resend_notification(
    session: Session, *, notification_id: int, who: str, now: datetime
) -> Outcome:
    """Put a failed, expired or undelivered notification back on the schedule, due now."""
    return _change(
        session,
        notification_id,
        RESENDABLE,
        {
            "status": str(S.SCHEDULED),
            "reason": f"resent by {who} at {now.isoformat()}",
            "due_at": now,
            # An explicit resend gets a fresh day: the original not-after may have passed.
            "not_after": now + RESEND_VALIDITY,
            "attempts": 0,
            "provider_id": None,
            "sent_at": None,
            "locked_by": None,
            "locked_until": None,
            "updated_at": now,
        },
    )
