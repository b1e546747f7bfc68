"""Cancelling a customer's pending reminders when they reorder (restock and stock-up advice).

Those reminders belong to the order being used up, while the reorder is a new order, so the
order-scoped ``schedule.cancel_pending`` cannot reach them; this cancels by customer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.models import NotificationRow

__all__ = ["cancel_customer_pending"]


def cancel_customer_pending(
    session: Session, *, customer_id: str, rule_ids: Iterable[str], reason: str, now: datetime
) -> int:
    """Cancel the customer's pending (scheduled or claimed) rows of ``rule_ids``; the count."""
    statement = (
        update(NotificationRow)
        .where(
            NotificationRow.customer_id == customer_id,
            NotificationRow.rule_id.in_(list(rule_ids)),
            NotificationRow.status.in_([str(S.SCHEDULED), str(S.CLAIMED)]),
        )
        .values(status=str(S.CANCELLED), reason=reason, locked_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined,no-any-return]
