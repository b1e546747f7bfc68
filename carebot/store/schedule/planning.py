"""The planner's writes: new rows of a plan, released waits, cancelled pending rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.notifications import PlannedNotification
from carebot.store._upsert import prepared_insert_ignore
from carebot.store.schedule._sql import PENDING, TABLE, execute, status_in

__all__ = ["cancel_pending", "cancel_rules", "insert_planned", "release_waiting"]


def insert_planned(
    session: Session, planned: Sequence[PlannedNotification], *, now: datetime
) -> list[PlannedNotification]:
    """Insert what is new; a dedupe key already present (in any status) is left alone.

    One statement for the whole plan (an executemany that SQLAlchemy sends as one multi-row
    INSERT … RETURNING, its "insertmanyvalues"); the keys it returns are the rows it stored.
    """
    # Within a plan the first item of a key wins, as when each went in on its own.
    first: dict[str, PlannedNotification] = {}
    for item in planned:
        first.setdefault(item.dedupe_key, item)
    unique = list(first.values())
    if not unique:
        return []
    rows = [
        {
            "dedupe_key": item.dedupe_key,
            "rule_id": item.rule_id,
            "channel": item.channel,
            "recipient": item.recipient,
            "fallback_recipient": item.fallback_recipient,
            "template": item.template,
            "locale": item.locale,
            "timezone": item.timezone,
            "window": item.window,
            "order_id": item.order_id,
            "customer_id": item.customer_id,
            "shipment_id": item.shipment_id,
            "event_id": item.event_id,
            "context": item.context,
            "due_at": item.due_at,
            "not_after": item.not_after,
            "status": str(item.status),
            "reason": item.reason,
            "attempts": 0,
            "max_attempts": item.max_attempts,
            "transactional": item.transactional,
            "in_doubt": item.in_doubt,
            "audience": item.audience,
            "created_at": now,
            "updated_at": now,
        }
        for item in unique
    ]
    statement = prepared_insert_ignore(session, TABLE, ("dedupe_key",), returning="dedupe_key")
    stored = set(execute(session, statement, rows).scalars())
    return [item for item in unique if item.dedupe_key in stored]


def release_waiting(
    session: Session, planned: Sequence[PlannedNotification], *, now: datetime
) -> list[PlannedNotification]:
    """Bring rows still scheduled under these dedupe keys forward, with the newer context.

    A rule with ``wait_for`` plans its message late while the condition does not hold; when a
    later event makes it hold, the waiting row takes the new facts and the earlier due time.
    A row already sent (or being sent) is left alone: ``once_per`` holds. Returns those
    released.
    """
    released: list[PlannedNotification] = []
    for item in planned:
        statement = (
            update(TABLE)
            .where(TABLE.c.dedupe_key == item.dedupe_key, TABLE.c.status == str(S.SCHEDULED))
            .values(
                context=item.context,
                due_at=case((TABLE.c.due_at > item.due_at, item.due_at), else_=TABLE.c.due_at),
                not_after=case(
                    (TABLE.c.due_at > item.due_at, item.not_after), else_=TABLE.c.not_after
                ),
                updated_at=now,
            )
        )
        if execute(session, statement, flush=True).rowcount:
            released.append(item)
    return released


def cancel_pending(
    session: Session,
    *,
    order_id: str,
    rule_ids: Iterable[str] | None,
    shipment_id: str | None,
    reason: str,
    now: datetime,
    customer_only: bool = False,
    exact_shipment: bool = False,
) -> int:
    """Cancel pending rows of an order (of the given rules; all when ``rule_ids`` is None).

    When the cancelling event is about one shipment, rows about other shipments stay (and,
    with ``exact_shipment``, those about the whole order too); ``customer_only`` leaves alerts
    to the merchant alone.
    """
    conditions: list[Any] = [TABLE.c.order_id == order_id, status_in(*PENDING)]
    if customer_only:
        conditions.append(TABLE.c.audience == "customer")
    if rule_ids is not None:
        conditions.append(TABLE.c.rule_id.in_(list(rule_ids)))
    if shipment_id is not None and exact_shipment:
        conditions.append(TABLE.c.shipment_id == shipment_id)
    elif shipment_id is not None:
        conditions.append(or_(TABLE.c.shipment_id.is_(None), TABLE.c.shipment_id == shipment_id))
    return _cancel(session, conditions, reason=reason, now=now)


def cancel_rules(session: Session, *, rule_ids: Iterable[str], reason: str, now: datetime) -> int:
    """Cancel every pending row (scheduled or claimed) of the given rules, in all orders."""
    conditions = [TABLE.c.rule_id.in_(list(rule_ids)), status_in(*PENDING)]
    return _cancel(session, conditions, reason=reason, now=now)


def _cancel(session: Session, conditions: Sequence[Any], *, reason: str, now: datetime) -> int:
    statement = (
        update(TABLE)
        .where(*conditions)
        .values(status=str(S.CANCELLED), reason=reason, locked_by=None, updated_at=now)
    )
    return execute(session, statement, flush=True).rowcount
