"""The send protocol's two writes: ``claimed → sending`` before the call, ``sent`` after it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.schedule._sql import TABLE, execute
from carebot.store.types import UTCDateTime

__all__ = ["mark_sending", "mark_sending_many", "mark_sent", "mark_sent_many"]

# The two updates of every send, built once: the send path runs them for each message.
_MARK_SENDING = (
    update(TABLE)
    .where(
        TABLE.c.id == bindparam("notification_id"),
        TABLE.c.status == str(S.CLAIMED),
        TABLE.c.locked_by == bindparam("worker"),
    )
    .values(
        status=str(S.SENDING),
        attempts=TABLE.c.attempts + 1,
        locked_until=bindparam("locked_until", type_=UTCDateTime()),
        subject=bindparam("subject"),
        body=bindparam("body"),
        segments=bindparam("segments"),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)
_MARK_SENT = (
    update(TABLE)
    .where(
        TABLE.c.id == bindparam("notification_id"),
        # Not IN (…): an expanding parameter cannot go in an executemany (mark_sent_many).
        or_(*(TABLE.c.status == str(status) for status in (S.SENDING, S.UNKNOWN, S.SCHEDULED))),
    )
    .values(
        status=str(S.SENT),
        provider_id=bindparam("provider_id"),
        provider_status=bindparam("provider_status"),
        sent_at=bindparam("now", type_=UTCDateTime()),
        locked_by=None,
        locked_until=None,
        reason=bindparam("reason"),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)


def mark_sending(
    session: Session,
    *,
    notification_id: int,
    worker: str,
    now: datetime,
    lease: timedelta,
    subject: str | None,
    body: str,
    segments: int | None = None,
) -> bool:
    """Commit the point of no return; False when the claim was lost (reaped or cancelled)."""
    result = execute(
        session,
        _MARK_SENDING,
        {
            "notification_id": notification_id,
            "worker": worker,
            "locked_until": now + lease,
            "subject": subject,
            "body": body,
            "segments": segments,
            "now": now,
        },
    )
    return result.rowcount == 1


def mark_sent(
    session: Session,
    *,
    notification_id: int,
    provider_id: str | None,
    provider_status: str | None,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Record that the provider accepted the message."""
    result = execute(
        session,
        _MARK_SENT,
        {
            "notification_id": notification_id,
            "provider_id": provider_id,
            "provider_status": provider_status,
            "now": now,
            "reason": reason,
        },
    )
    return result.rowcount == 1


# Which rows of a batch are still this worker's claim (the rest were reaped or cancelled).
_STILL_CLAIMED = (
    select(TABLE.c.id)
    .where(
        TABLE.c.id.in_(bindparam("ids", expanding=True)),
        TABLE.c.status == str(S.CLAIMED),
        TABLE.c.locked_by == bindparam("worker"),
    )
    .with_for_update()
)


def mark_sending_many(
    session: Session, *, worker: str, lease: timedelta, rows: Sequence[dict[str, Any]]
) -> set[int]:
    """``mark_sending`` for several rows in one transaction; the ids that became ``sending``.

    Each item of ``rows`` has ``notification_id``, ``subject``, ``body``, ``segments`` and
    ``now``. The rows still claimed by ``worker`` are read (and, on PostgreSQL, locked) first,
    then updated in one executemany; a row whose claim was lost is left alone.
    """
    if not rows:
        return set()
    ids = [row["notification_id"] for row in rows]
    ours = set(execute(session, _STILL_CLAIMED, {"ids": ids, "worker": worker}).scalars())
    params = [
        {**row, "worker": worker, "locked_until": row["now"] + lease}
        for row in rows
        if row["notification_id"] in ours
    ]
    if params:
        execute(session, _MARK_SENDING, params)
    return ours


def mark_sent_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """``mark_sent`` for several rows in one executemany (items: ``notification_id``,
    ``provider_id``, ``provider_status``, ``now``, ``reason``)."""
    if rows:
        execute(session, _MARK_SENT, list(rows))
