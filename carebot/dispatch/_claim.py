"""The claim's transaction: due rows, the guards of their addresses, the next due time."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from carebot.dispatch.caps import ROLLING_WINDOW
from carebot.dispatch.decide import MERCHANT, Guards
from carebot.store import consent, schedule
from carebot.store.schedule import Claimed

__all__ = ["claim_with_guards", "read_guards"]


def read_guards(session: Session, *, channel: str, address: str, since: datetime | None) -> Guards:
    """Whether ``address`` opted out of ``channel``; when not and ``since`` is given, when
    messages to it went out after ``since`` (for the frequency cap)."""
    if since is None:
        return consent.is_opted_out(session, channel=channel, address=address), []
    return schedule.guards(session, channel=channel, address=address, since=since)


def claim_with_guards(
    session: Session,
    *,
    now: datetime,
    worker: str,
    limit: int,
    lease: timedelta,
    read_next_due: bool,
) -> tuple[list[Claimed], dict[tuple[str, str], Guards], datetime | None]:
    """Claim due rows and, in the same transaction, read the guards of their addresses and,
    with ``read_next_due``, when the next scheduled row falls due."""
    rows = schedule.claim_due(session, now=now, worker=worker, limit=limit, lease=lease)
    addresses: dict[str, set[str]] = {}
    for row in rows:
        if row.audience != MERCHANT and row.recipient:
            addresses.setdefault(row.channel, set()).add(row.recipient)
    guards: dict[tuple[str, str], Guards] = {}
    for channel, among in addresses.items():
        found = schedule.guards_many(
            session, channel=channel, addresses=among, since=now - ROLLING_WINDOW
        )
        guards.update({(channel, address): value for address, value in found.items()})
    return rows, guards, schedule.next_due_at(session) if read_next_due else None
