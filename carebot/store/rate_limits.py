"""Token buckets kept in the database, so every carebot process shares one provider allowance.

A provider's limit (Twilio's messages per second for a sender, an SMTP relay's rate) is for
the account, not for one process: three daemons each sending at the full rate would be three
times over it. The bucket's row is read and updated in one short transaction under a row lock
(``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers anyway).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import RateBucketRow

__all__ = ["take_token"]


def take_token(session: Session, *, name: str, rate: float, burst: float, now: datetime) -> float:
    """Take one token from bucket ``name``: 0.0 when taken, else the seconds until one is free.

    The bucket starts full (``burst`` tokens) and refills at ``rate`` a second up to ``burst``.
    A clock that went backwards (another host's) refills nothing and takes nothing extra.
    """
    locked = select(RateBucketRow).where(RateBucketRow.name == name).with_for_update()
    row = session.scalars(locked).one_or_none()
    if row is None:  # the bucket's first use; another process may be creating it too
        session.execute(
            insert_ignore(session, RateBucketRow, ["name"]).values(
                name=name, tokens=burst, updated_at=now
            )
        )
        row = session.scalars(locked).one()
    elapsed = max(0.0, (now - row.updated_at).total_seconds())
    tokens = min(burst, row.tokens + elapsed * rate)
    row.updated_at = max(now, row.updated_at)
    if tokens >= 1.0:
        row.tokens = tokens - 1.0
        return 0.0
    row.tokens = tokens
    return (1.0 - tokens) / rate
