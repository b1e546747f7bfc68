"""The dispatcher's claim of due rows, and when the next scheduled row falls due.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` (see
``database.py``) on SQLite, so several dispatchers never take the same row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import Integer, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.schedule._sql import IS_SCHEDULED, TABLE, execute
from carebot.store.types import UTCDateTime

__all__ = ["Claimed", "claim_due", "due_candidates", "next_due_at"]

# SQLite keeps no statistics unless analysed and then prefers the status index and sorts
# every pending row (23x slower at 200,000 pending). SQLAlchemy's Core has no SQLite index
# hint (``with_hint`` renders nothing there), so the two reads that need the partial due-time
# index spell it out as text, with typed bound parameters.
_SQLITE_DUE_CANDIDATES = (
    "SELECT id FROM notifications INDEXED BY ix_notifications_due_pending "
    "WHERE status = 'scheduled' AND due_at <= :now ORDER BY due_at, id LIMIT :limit"
)
_SQLITE_NEXT_DUE = (
    "SELECT due_at FROM notifications INDEXED BY ix_notifications_due_pending "
    "WHERE status = 'scheduled' ORDER BY due_at LIMIT 1"
)


def due_candidates(dialect: str) -> Any:
    """The ids of the oldest due scheduled rows, read through the partial due-time index.

    Parameters: ``now`` (due at or before it) and ``limit``.
    """
    if dialect == "sqlite":
        return (
            text(_SQLITE_DUE_CANDIDATES)
            .bindparams(bindparam("now", type_=UTCDateTime()), bindparam("limit", type_=Integer()))
            .columns(TABLE.c.id)
        )
    return (
        select(TABLE.c.id)
        .where(IS_SCHEDULED, TABLE.c.due_at <= bindparam("now", type_=UTCDateTime()))
        .order_by(TABLE.c.due_at, TABLE.c.id)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )


class Claimed(Protocol):
    """What the dispatcher reads of a claimed row (the columns of the same names).

    The claim returns plain result rows, not ORM objects: the dispatcher only reads them and
    writes every change through this package's statements, and building a mapped object per
    row cost more than the claim's own statement.
    """

    id: int
    dedupe_key: str
    rule_id: str
    channel: str
    recipient: str | None
    fallback_recipient: str | None
    template: str
    locale: str
    timezone: str
    window: str | None
    order_id: str | None
    customer_id: str | None
    shipment_id: str | None
    event_id: str | None
    context: dict[str, Any]
    due_at: datetime
    not_after: datetime
    attempts: int
    max_attempts: int
    unexpected_failures: int
    transactional: bool
    in_doubt: str
    audience: str
    body: str | None
    created_at: datetime


_CLAIMED_COLUMNS = tuple(TABLE.c[name] for name in Claimed.__annotations__)


@cache
def _claim(dialect: str) -> Any:
    """The claim, built once per dialect: the dispatcher runs it every tick."""
    return (
        update(TABLE)
        .where(TABLE.c.id.in_(due_candidates(dialect).scalar_subquery()))
        .values(
            status=str(S.CLAIMED),
            locked_by=bindparam("worker"),
            locked_until=bindparam("locked_until", type_=UTCDateTime()),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(*_CLAIMED_COLUMNS)
    )


def claim_due(
    session: Session, *, now: datetime, worker: str, limit: int, lease: timedelta
) -> list[Claimed]:
    """Take up to ``limit`` due scheduled rows for ``worker``, oldest due first."""
    params = {"now": now, "limit": limit, "worker": worker, "locked_until": now + lease}
    result = execute(session, _claim(session.get_bind().dialect.name), params)
    rows = cast(list[Claimed], result.all())
    rows.sort(key=lambda r: (r.due_at, r.id))
    return rows


# When the earliest scheduled row falls due. SQLite reads the first entry of the due-time index
# and sorts nothing, as in due_candidates.
_NEXT_DUE: dict[str, Any] = {
    "sqlite": text(_SQLITE_NEXT_DUE).columns(TABLE.c.due_at),
    "postgresql": select(func.min(TABLE.c.due_at)).where(IS_SCHEDULED),
}


def next_due_at(session: Session) -> datetime | None:
    """When the earliest scheduled row falls due."""
    due: datetime | None = execute(session, _NEXT_DUE[session.get_bind().dialect.name]).scalar()
    return due
