"""Provider outages as every process sees them: circuit breakers' state and who is waiting.

A circuit breaker lives in the process that sends, but ``carebot status`` and the dashboard
may run elsewhere. So the sending process records each breaker's turns here: when it opens
(the provider is failing, since when, the last error) and when a trial succeeds again (the
record is removed). Several senders share one record per provider: the earliest ``since``
stays, and any sender's success clears it, because a provider that took one message is back.
How many messages wait on a provider is read from the schedule itself: its scheduled rows
that are due, or that an error or an open circuit put back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import KeyValueRow, NotificationRow
from carebot.store.schedule import IS_SCHEDULED

__all__ = ["Outage", "outages", "record_circuit", "waiting_by_channel"]

_PREFIX = "circuit:"


@dataclass(frozen=True)
class Outage:
    """A provider whose circuit is open: failing since ``since``; ``waiting`` messages."""

    channel: str
    provider: str
    since: datetime
    last_error: str | None
    waiting: int

    def as_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "provider": self.provider,
            "since": self.since.isoformat(),
            "last_error": self.last_error,
            "waiting": self.waiting,
        }


def record_circuit(
    session: Session,
    *,
    channel: str,
    provider: str,
    failing: bool,
    last_error: str | None,
    now: datetime,
) -> None:
    """Record that ``provider``'s circuit opened (``failing``) or closed again."""
    key = f"{_PREFIX}{channel}:{provider}"
    if not failing:
        session.execute(delete(KeyValueRow).where(KeyValueRow.key == key))
        return
    value = json.dumps({"since": now.isoformat(), "last_error": last_error})
    session.execute(insert_ignore(session, KeyValueRow, ["key"]).values(key=key, value=value))
    row = session.get_one(KeyValueRow, key)
    since = json.loads(row.value).get("since") or now.isoformat()
    # Another sender saw it fail first: keep its ``since``, take the newest error.
    row.value = json.dumps({"since": since, "last_error": last_error})


def waiting_by_channel(session: Session, *, now: datetime) -> dict[str, int]:
    """Scheduled messages per channel that are due or were put back by a failure."""
    rows = session.execute(
        select(NotificationRow.channel, func.count())
        .where(
            IS_SCHEDULED,
            or_(NotificationRow.due_at <= now, NotificationRow.last_error.is_not(None)),
        )
        .group_by(NotificationRow.channel)
    )
    return {channel: count for channel, count in rows}


def outages(session: Session, *, now: datetime) -> list[Outage]:
    """The providers whose circuit is open, oldest outage first."""
    records = session.scalars(select(KeyValueRow).where(KeyValueRow.key.startswith(_PREFIX))).all()
    if not records:
        return []
    waiting = waiting_by_channel(session, now=now)
    found = []
    for record in records:
        channel, _, provider = record.key.removeprefix(_PREFIX).partition(":")
        value = json.loads(record.value)
        found.append(
            Outage(
                channel=channel,
                provider=provider,
                since=datetime.fromisoformat(value["since"]),
                last_error=value.get("last_error"),
                waiting=waiting.get(channel, 0),
            )
        )
    return sorted(found, key=lambda outage: outage.since)
