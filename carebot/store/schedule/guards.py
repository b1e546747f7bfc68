"""The reads a send re-checks: whether the address opted out, and what went to it lately."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Boolean,
    Table,
    bindparam,
    func,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store import consent
from carebot.store.models import ConsentRow
from carebot.store.schedule._sql import TABLE, execute, status_in
from carebot.store.types import UTCDateTime

__all__ = ["guards", "guards_many"]

_CONSENT = cast(Table, ConsentRow.__table__)

# Statuses that count against a frequency cap: what went out, or is going out right now.
_COUNTED = (S.SENT, S.DELIVERED, S.SENDING)


# When a message counted by the frequency cap went out: a row still ``sending`` has no
# ``sent_at`` yet, and the moment it became ``sending`` stands in.
_SENT_MOMENT = func.coalesce(TABLE.c.sent_at, TABLE.c.updated_at)


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
        TABLE.c.channel == bindparam("channel"),
        TABLE.c.recipient == bindparam("recipient"),
        status_in(*_COUNTED),
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
    for row in execute(session, _GUARDS, params):
        if row.kind == 0:
            opted_out = bool(row.opted_out)
        else:
            sent.append(row.sent)
    return (True, []) if opted_out else (False, sent)


# The same two reads for many addresses of one channel at once (a claimed batch).
_OPTED_OUT_AMONG = select(_CONSENT.c.address).where(
    _CONSENT.c.channel == bindparam("channel"),
    _CONSENT.c.address.in_(bindparam("addresses", expanding=True)),
    _CONSENT.c.opted_out.is_(True),
)
_SENT_TO_AMONG = select(TABLE.c.recipient, _SENT_MOMENT).where(
    TABLE.c.channel == bindparam("channel"),
    TABLE.c.recipient.in_(bindparam("recipients", expanding=True)),
    status_in(*_COUNTED),
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
        execute(
            session,
            _OPTED_OUT_AMONG,
            {"channel": channel, "addresses": sorted(set(keys.values()))},
            flush=True,
        ).scalars()
    )
    sent: dict[str, list[datetime]] = {address: [] for address in wanted}
    params = {"channel": channel, "recipients": wanted, "since": since}
    for recipient, moment in execute(session, _SENT_TO_AMONG, params):
        sent[recipient].append(moment)
    return {
        address: (True, []) if keys[address] in opted_out else (False, sent[address])
        for address in wanted
    }
