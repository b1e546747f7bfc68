"""The notifications table as Core, and the one way this package runs a statement."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.models import NotificationRow

__all__ = ["IS_SCHEDULED", "PENDING", "TABLE", "execute", "status_in"]

# Every statement of the package is Core on the table, with bound parameters. Hot ones are
# built once at import, so SQLAlchemy compiles each once (its compiled cache) and every
# execution only binds values.
TABLE = cast(Table, NotificationRow.__table__)
IS_SCHEDULED = TABLE.c.status == str(S.SCHEDULED)
PENDING = (S.SCHEDULED, S.CLAIMED)


def status_in(*statuses: S) -> Any:
    return TABLE.c.status.in_([str(status) for status in statuses])


def execute(
    session: Session, statement: Executable, params: Any = None, *, flush: bool = False
) -> CursorResult[*tuple[Any, ...]]:
    """Run ``statement`` on the session's connection: no ORM bookkeeping, no autoflush.

    ``flush``: first write the objects the session holds (when it autoflushes), as an
    ORM-enabled statement would. The statements that were ORM-enabled before this package
    kept to Core pass it, so their place in a transaction's order of writes is unchanged
    (an ingest may hold new ORM objects, such as a case, when it cancels rows).
    """
    if flush and session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)
