"""The durable schedule: notification rows and every state change the dispatcher makes.

Each function is one short statement or transaction; none is ever held open across a call to
a provider. Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` (see
``database.py``) on SQLite, so several dispatchers never take the same row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import (
    Boolean,
    CursorResult,
    Integer,
    Result,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.notifications import PlannedNotification
from carebot.store import consent
from carebot.store._upsert import prepared_insert_ignore
from carebot.store.models import ConsentRow, NotificationRow
from carebot.store.types import UTCDateTime

__all__ = [
    "Claimed",
    "ReapReport",
    "absorb",
    "cancel_pending",
    "cancel_rules",
    "claim_due",
    "finish",
    "guards",
    "guards_many",
    "insert_planned",
    "mark_sending",
    "mark_sending_many",
    "mark_sent",
    "mark_sent_many",
    "merge_target",
    "next_due_at",
    "reap_expired_leases",
    "release",
    "release_waiting",
    "settle_from_provider",
]

_PENDING = (S.SCHEDULED, S.CLAIMED)
# Hot statements are built on the table once, as Core with bound parameters, so SQLAlchemy
# compiles each once (its compiled cache) and every execution only binds values. They run on
# the session's connection (``Connection.execute``): no ORM bookkeeping and no autoflush, which
# is safe because no ORM object of this table is ever pending in a session.
_TABLE = cast(Table, NotificationRow.__table__)
IS_SCHEDULED = _TABLE.c.status == str(S.SCHEDULED)


def _status_in(*statuses: S) -> Any:
    return _TABLE.c.status.in_([str(status) for status in statuses])


def _rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE matched (``Session.execute`` types its result as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


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
    statement = prepared_insert_ignore(session, _TABLE, ("dedupe_key",), returning="dedupe_key")
    stored = set(session.connection().execute(statement, rows).scalars())
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
            update(NotificationRow)
            .where(
                NotificationRow.dedupe_key == item.dedupe_key,
                NotificationRow.status == str(S.SCHEDULED),
            )
            .values(
                context=item.context,
                due_at=case(
                    (NotificationRow.due_at > item.due_at, item.due_at),
                    else_=NotificationRow.due_at,
                ),
                not_after=case(
                    (NotificationRow.due_at > item.due_at, item.not_after),
                    else_=NotificationRow.not_after,
                ),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if session.execute(statement).rowcount:  # type: ignore[attr-defined]
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
    conditions: list[Any] = [
        NotificationRow.order_id == order_id,
        NotificationRow.status.in_([str(s) for s in _PENDING]),
    ]
    if customer_only:
        conditions.append(NotificationRow.audience == "customer")
    if rule_ids is not None:
        conditions.append(NotificationRow.rule_id.in_(list(rule_ids)))
    if shipment_id is not None and exact_shipment:
        conditions.append(NotificationRow.shipment_id == shipment_id)
    elif shipment_id is not None:
        conditions.append(
            or_(NotificationRow.shipment_id.is_(None), NotificationRow.shipment_id == shipment_id)
        )
    statement = (
        update(NotificationRow)
        .where(*conditions)
        .values(status=str(S.CANCELLED), reason=reason, locked_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(statement))


def cancel_rules(session: Session, *, rule_ids: Iterable[str], reason: str, now: datetime) -> int:
    """Cancel every pending row (scheduled or claimed) of the given rules, in all orders."""
    statement = (
        update(NotificationRow)
        .where(
            NotificationRow.rule_id.in_(list(rule_ids)),
            NotificationRow.status.in_([str(s) for s in _PENDING]),
        )
        .values(status=str(S.CANCELLED), reason=reason, locked_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(statement))


def due_candidates(dialect: str) -> Any:
    """The ids of the oldest due scheduled rows, read through the partial due-time index.

    Parameters: ``now`` (due at or before it) and ``limit``.
    """
    if dialect == "sqlite":
        # SQLite keeps no statistics unless analysed and then prefers the status index and
        # sorts every pending row (23x slower at 200,000 pending); SQLAlchemy has no SQLite
        # index hints, so the hint is spelled out here.
        return (
            text(
                "SELECT id FROM notifications INDEXED BY ix_notifications_due_pending "
                "WHERE status = 'scheduled' AND due_at <= :now ORDER BY due_at, id LIMIT :limit"
            )
            .bindparams(bindparam("now", type_=UTCDateTime()), bindparam("limit", type_=Integer()))
            .columns(_TABLE.c.id)
        )
    return (
        select(_TABLE.c.id)
        .where(IS_SCHEDULED, _TABLE.c.due_at <= bindparam("now", type_=UTCDateTime()))
        .order_by(_TABLE.c.due_at, _TABLE.c.id)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )


class Claimed(Protocol):
    """What the dispatcher reads of a claimed row (the columns of the same names).

    The claim returns plain result rows, not ORM objects: the dispatcher only reads them and
    writes every change through the statements below, and building a mapped object per row
    cost more than the claim's own statement.
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


_CLAIMED_COLUMNS = tuple(_TABLE.c[name] for name in Claimed.__annotations__)


@cache
def _claim(dialect: str) -> Any:
    """The claim, built once per dialect: the dispatcher runs it every tick."""
    return (
        update(_TABLE)
        .where(_TABLE.c.id.in_(due_candidates(dialect).scalar_subquery()))
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
    result = session.connection().execute(_claim(session.get_bind().dialect.name), params)
    rows = cast(list[Claimed], result.all())
    rows.sort(key=lambda r: (r.due_at, r.id))
    return rows


# The two updates of every send, built once: the send path runs them for each message.
_MARK_SENDING = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("notification_id"),
        _TABLE.c.status == str(S.CLAIMED),
        _TABLE.c.locked_by == bindparam("worker"),
    )
    .values(
        status=str(S.SENDING),
        attempts=_TABLE.c.attempts + 1,
        locked_until=bindparam("locked_until", type_=UTCDateTime()),
        subject=bindparam("subject"),
        body=bindparam("body"),
        segments=bindparam("segments"),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
)
_MARK_SENT = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("notification_id"),
        # Not IN (…): an expanding parameter cannot go in an executemany (mark_sent_many).
        or_(*(_TABLE.c.status == str(status) for status in (S.SENDING, S.UNKNOWN, S.SCHEDULED))),
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
    result = session.connection().execute(
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
    result = session.connection().execute(
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
    select(_TABLE.c.id)
    .where(
        _TABLE.c.id.in_(bindparam("ids", expanding=True)),
        _TABLE.c.status == str(S.CLAIMED),
        _TABLE.c.locked_by == bindparam("worker"),
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
    ours = set(session.scalars(_STILL_CLAIMED, {"ids": ids, "worker": worker}))
    params = [
        {**row, "worker": worker, "locked_until": row["now"] + lease}
        for row in rows
        if row["notification_id"] in ours
    ]
    if params:
        session.execute(_MARK_SENDING, params)
    return ours


def mark_sent_many(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """``mark_sent`` for several rows in one executemany (items: ``notification_id``,
    ``provider_id``, ``provider_status``, ``now``, ``reason``)."""
    if rows:
        session.execute(_MARK_SENT, list(rows))


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
    values: dict[str, Any] = {
        "status": str(S.SCHEDULED),
        "due_at": due_at,
        "locked_by": None,
        "locked_until": None,
        "reason": reason,
        "updated_at": now,
    }
    if error is not None:
        values["last_error"] = error
    if forget_body:
        values["body"] = None
    if unexpected:
        values["unexpected_failures"] = NotificationRow.unexpected_failures + 1
    session.execute(
        update(NotificationRow)
        .where(
            NotificationRow.id == notification_id,
            NotificationRow.status.in_([str(S.CLAIMED), str(S.SENDING)]),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


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
        values["unexpected_failures"] = NotificationRow.unexpected_failures + 1
    session.execute(
        update(NotificationRow)
        .where(
            NotificationRow.id == notification_id,
            NotificationRow.status.in_([str(S.CLAIMED), str(S.SENDING), str(S.SCHEDULED)]),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class ReapReport:
    released: int
    resent: int
    unknown: int
    expired: int = 0
    failed: int = 0


# Reasons the reaper writes.
REAPED_LATE_CLAIM = "not sent: past its not-after time when its worker's claim ran out"
REAPED_RESEND = "sender stopped mid-send; the provider is asked before it goes again"
REAPED_UNKNOWN = "sender stopped mid-send; the provider may or may not have it"
REAPED_LATE_SEND = (
    "sender stopped mid-send, past its not-after time: not sent again; "
    "the provider may or may not have it"
)
REAPED_GAVE_UP = (
    "gave up: the sender stopped mid-send on the last of its attempts; "
    "the provider may or may not have it"
)


def reap_expired_leases(session: Session, *, now: datetime) -> ReapReport:
    """Recover rows whose worker died: claims go back; in-doubt sends follow their policy.

    A row is never handed back past its ``not_after`` or its attempts: a claim that ran out
    late ends ``expired``; a send that died is an unexpected failure, and the one that uses up
    ``max_attempts`` ends ``failed`` (a message that kills its sender is not tried for ever).
    """
    expired = NotificationRow.locked_until < now
    late = NotificationRow.not_after < now
    claimed = NotificationRow.status == str(S.CLAIMED)
    sending = NotificationRow.status == str(S.SENDING)
    resend = NotificationRow.in_doubt == "resend"
    exhausted = NotificationRow.unexpected_failures + 1 >= NotificationRow.max_attempts
    strike = {"unexpected_failures": NotificationRow.unexpected_failures + 1}

    def _update(where: Any, **values: Any) -> int:
        statement = (
            update(NotificationRow)
            .where(expired, where)
            .values(locked_by=None, locked_until=None, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(session.execute(statement))

    late_claims = _update(and_(claimed, late), status=str(S.EXPIRED), reason=REAPED_LATE_CLAIM)
    released = _update(claimed, status=str(S.SCHEDULED))
    failed = _update(
        and_(sending, resend, exhausted), status=str(S.FAILED), reason=REAPED_GAVE_UP, **strike
    )
    late_sends = _update(
        and_(sending, resend, late), status=str(S.UNKNOWN), reason=REAPED_LATE_SEND, **strike
    )
    resent = _update(and_(sending, resend), status=str(S.SCHEDULED), reason=REAPED_RESEND, **strike)
    unknown = _update(sending, status=str(S.UNKNOWN), reason=REAPED_UNKNOWN, **strike)
    return ReapReport(
        released=released,
        resent=resent,
        unknown=unknown + late_sends,
        expired=late_claims,
        failed=failed,
    )


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
    settleable = [str(S.SENDING), str(S.UNKNOWN), str(S.SENT), str(S.SCHEDULED), str(S.CLAIMED)]
    if status in (S.DELIVERED, S.UNDELIVERED, S.FAILED):
        settleable.append(str(S.DELIVERED))
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
        update(NotificationRow)
        .where(NotificationRow.id == notification_id, NotificationRow.status.in_(settleable))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(statement)) == 1


# When the earliest scheduled row falls due. SQLite reads the first entry of the due-time index
# and sorts nothing, as in due_candidates.
_NEXT_DUE: dict[str, Any] = {
    "sqlite": text(
        "SELECT due_at FROM notifications INDEXED BY ix_notifications_due_pending "
        "WHERE status = 'scheduled' ORDER BY due_at LIMIT 1"
    ).columns(NotificationRow.due_at),
    "postgresql": select(func.min(NotificationRow.due_at)).where(IS_SCHEDULED),
}


def next_due_at(session: Session) -> datetime | None:
    """When the earliest scheduled row falls due."""
    due: datetime | None = (
        session.connection().execute(_NEXT_DUE[session.get_bind().dialect.name]).scalar()
    )
    return due


# Statuses that count against a frequency cap: what went out, or is going out right now.
_COUNTED = (S.SENT, S.DELIVERED, S.SENDING)


# When a message counted by the frequency cap went out: a row still ``sending`` has no
# ``sent_at`` yet, and the moment it became ``sending`` stands in.
_SENT_MOMENT = func.coalesce(_TABLE.c.sent_at, _TABLE.c.updated_at)


# The guards a send re-checks, in one statement: whether the address opted out of the channel
# (the row of kind 0, always there) and when messages to it went out after ``since`` (rows of
# kind 1). The first row's column types type the union's columns.
_GUARDS = union_all(
    select(
        literal_column("0").label("kind"),
        consent.OPTED_OUT.scalar_subquery().label("opted_out"),
        type_coerce(null(), UTCDateTime()).label("sent"),
    ),
    select(literal_column("1"), type_coerce(null(), Boolean()), _SENT_MOMENT).where(
        _TABLE.c.channel == bindparam("channel"),
        _TABLE.c.recipient == bindparam("recipient"),
        _status_in(*_COUNTED),
        _SENT_MOMENT > bindparam("since", type_=UTCDateTime()),  # noqa: SIM300 (an expression)
    ),
)


def guards(
    session: Session, *, channel: str, address: str, since: datetime
) -> tuple[bool, list[datetime]]:
    """Whether ``address`` opted out of ``channel`` and, when not, when messages to it went
    out after ``since`` (for the frequency cap): one statement for the two reads before a
    send."""
    params = {
        "channel": channel,
        "address": consent.address_key(channel, address),
        "recipient": address,
        "since": since,
    }
    opted_out, sent = False, []
    for row in session.connection().execute(_GUARDS, params):
        if row.kind == 0:
            opted_out = bool(row.opted_out)
        else:
            sent.append(row.sent)
    return (True, []) if opted_out else (False, sent)


# The same two reads for many addresses of one channel at once (a claimed batch).
_OPTED_OUT_AMONG = select(ConsentRow.address).where(
    ConsentRow.channel == bindparam("channel"),
    ConsentRow.address.in_(bindparam("addresses", expanding=True)),
    ConsentRow.opted_out.is_(True),
)
_SENT_TO_AMONG = select(_TABLE.c.recipient, _SENT_MOMENT).where(
    _TABLE.c.channel == bindparam("channel"),
    _TABLE.c.recipient.in_(bindparam("recipients", expanding=True)),
    _status_in(*_COUNTED),
    _SENT_MOMENT > bindparam("since", type_=UTCDateTime()),  # noqa: SIM300 (an expression)
)


def guards_many(
    session: Session, *, channel: str, addresses: Iterable[str], since: datetime
) -> dict[str, tuple[bool, list[datetime]]]:
    """``guards`` for each of ``addresses`` on ``channel``, in two statements in all."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    keys = {address: consent.address_key(channel, address) for address in wanted}
    opted_out = set(
        session.scalars(
            _OPTED_OUT_AMONG, {"channel": channel, "addresses": sorted(set(keys.values()))}
        )
    )
    sent: dict[str, list[datetime]] = {address: [] for address in wanted}
    params = {"channel": channel, "recipients": wanted, "since": since}
    for recipient, moment in session.execute(_SENT_TO_AMONG, params):
        sent[recipient].append(moment)
    return {
        address: (True, []) if keys[address] in opted_out else (False, sent[address])
        for address in wanted
    }


def merge_target(session: Session, *, row: Claimed, due_by: datetime) -> NotificationRow | None:
    """A pending row ``row`` could be merged into: same rule, template and recipient, due by
    ``due_by``, not transactional, earliest first."""
    return session.scalars(
        select(NotificationRow)
        .where(
            NotificationRow.id != row.id,
            IS_SCHEDULED,
            NotificationRow.rule_id == row.rule_id,
            NotificationRow.template == row.template,
            NotificationRow.channel == row.channel,
            NotificationRow.recipient == row.recipient,
            NotificationRow.transactional.is_(False),
            NotificationRow.due_at <= due_by,
        )
        .order_by(NotificationRow.due_at, NotificationRow.id)
        .limit(1)
    ).first()


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
    updated = _rowcount(
        session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.id == survivor_id,
                IS_SCHEDULED,
                NotificationRow.updated_at == survivor_version,
            )
            .values(context=context, not_after=not_after, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if updated != 1:
        return False
    finish(
        session,
        notification_id=absorbed_id,
        status=S.CANCELLED,
        reason=f"merged into notification {survivor_id}",
        now=now,
    )
    return True
