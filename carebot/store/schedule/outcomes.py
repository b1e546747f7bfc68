"""How an in-progress row leaves the send path: back on the schedule, ended, or settled by a
delivery receipt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.schedule._sql import TABLE, execute, status_in

__all__ = ["finish", "release", "settle_from_provider"]


def _off_lease(
    status: S, *, reason: str | None, now: datetime, error: str | None, unexpected: bool
) -> dict[str, Any]:
    """What ``release`` and ``finish`` write: the new status and reason, the lease gone, the
    error when there is one, and a strike when the attempt ended unexpectedly."""
    values: dict[str, Any] = {
        "status": str(status),
        "reason": reason,
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
    }
    if error is not None:
        values["last_error"] = error
    if unexpected:
        values["unexpected_failures"] = TABLE.c.unexpected_failures + 1
    return values


def release(
    session: Session,
    *,
    notification_id: int,
    due_at: datetime,
    now: datetime,
    reason: str | None,
    error: str | None = None,
    forget_body: bool = False,
    unexpected: bool = False,
) -> None:
    """Put a claimed or sending row back on the schedule at ``due_at`` (a retry or a hold).

    ``forget_body``: the provider refused the last attempt outright, so the next one need not
    ask it whether it has the message (the dispatcher asks only when ``body`` is kept).
    ``unexpected``: the attempt ended in an unexpected error, which counts against
    ``max_attempts``.
    """
    values = _off_lease(S.SCHEDULED, reason=reason, now=now, error=error, unexpected=unexpected)
    values["due_at"] = due_at
    if forget_body:
        values["body"] = None
    statement = (
        update(TABLE)
        .where(TABLE.c.id == notification_id, status_in(S.CLAIMED, S.SENDING))
        .values(**values)
    )
    execute(session, statement, flush=True)


def finish(
    session: Session,
    *,
    notification_id: int,
    status: S,
    reason: str,
    now: datetime,
    error: str | None = None,
    unexpected: bool = False,
) -> None:
    """End an in-progress row in a terminal status, with the reason."""
    values = _off_lease(status, reason=reason, now=now, error=error, unexpected=unexpected)
    statement = (
        update(TABLE)
        .where(TABLE.c.id == notification_id, status_in(S.CLAIMED, S.SENDING, S.SCHEDULED))
        .values(**values)
    )
    execute(session, statement, flush=True)


def settle_from_provider(
    session: Session,
    *,
    notification_id: int,
    status: S,
    provider_id: str | None,
    provider_status: str,
    reason: str | None,
    now: datetime,
) -> bool:
    """Apply a delivery receipt; an in-doubt or already-sent row is settled by it."""
    settleable = [S.SENDING, S.UNKNOWN, S.SENT, S.SCHEDULED, S.CLAIMED]
    if status in (S.DELIVERED, S.UNDELIVERED, S.FAILED):
        settleable.append(S.DELIVERED)
    values: dict[str, Any] = {
        "status": str(status),
        "provider_status": provider_status,
        "locked_by": None,
        "locked_until": None,
        "updated_at": now,
    }
    if provider_id:
        values["provider_id"] = provider_id
    if reason is not None:
        values["reason"] = reason
    statement = (
        update(TABLE).where(TABLE.c.id == notification_id, status_in(*settleable)).values(**values)
    )
    return execute(session, statement, flush=True).rowcount == 1
