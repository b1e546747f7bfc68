"""Merging a capped message into a pending one of the same rule to the same address."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.schedule._sql import IS_SCHEDULED, TABLE, execute
from carebot.store.schedule.claims import Claimed
from carebot.store.schedule.outcomes import finish

__all__ = ["MergeTarget", "absorb", "merge_target"]


class MergeTarget(Claimed, Protocol):
    """A pending row as ``merge_target`` reads it: every column, ``updated_at`` among them."""

    updated_at: datetime


def merge_target(session: Session, *, row: Claimed, due_by: datetime) -> MergeTarget | None:
    """A pending row ``row`` could be merged into: same rule, template and recipient, due by
    ``due_by``, not transactional, earliest first."""
    statement = (
        select(TABLE)
        .where(
            TABLE.c.id != row.id,
            IS_SCHEDULED,
            TABLE.c.rule_id == row.rule_id,
            TABLE.c.template == row.template,
            TABLE.c.channel == row.channel,
            TABLE.c.recipient == row.recipient,
            TABLE.c.transactional.is_(False),
            TABLE.c.due_at <= due_by,
        )
        .order_by(TABLE.c.due_at, TABLE.c.id)
        .limit(1)
    )
    return cast("MergeTarget | None", execute(session, statement, flush=True).first())


def absorb(
    session: Session,
    *,
    survivor_id: int,
    survivor_version: datetime,
    absorbed_id: int,
    context: dict[str, Any],
    not_after: datetime,
    now: datetime,
) -> bool:
    """Give the survivor the merged ``context`` and cancel the absorbed row, or do neither.

    ``survivor_version`` is the ``updated_at`` the caller read: if the survivor changed since
    (claimed, merged into by someone else), nothing is written and False comes back.
    """
    statement = (
        update(TABLE)
        .where(TABLE.c.id == survivor_id, IS_SCHEDULED, TABLE.c.updated_at == survivor_version)
        .values(context=context, not_after=not_after, updated_at=now)
    )
    if execute(session, statement, flush=True).rowcount != 1:
        return False
    finish(
        session,
        notification_id=absorbed_id,
        status=S.CANCELLED,
        reason=f"merged into notification {survivor_id}",
        now=now,
    )
    return True
