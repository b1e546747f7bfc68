"""Consent: who may be messaged on which channel, with where and when that was said."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import ConsentRow

__all__ = ["is_opted_out", "set_consent"]


def set_consent(
    session: Session, *, channel: str, address: str, opted_out: bool, source: str, now: datetime
) -> None:
    """Record the latest word of ``address`` on ``channel`` (an opt-out or an opt-in)."""
    session.execute(
        insert_ignore(session, ConsentRow, ["channel", "address"]).values(
            channel=channel, address=address, opted_out=opted_out, source=source, changed_at=now
        )
    )
    row = session.scalars(
        select(ConsentRow).where(ConsentRow.channel == channel, ConsentRow.address == address)
    ).one()
    row.opted_out = opted_out
    row.source = source
    row.changed_at = now


def is_opted_out(session: Session, *, channel: str, address: str) -> bool:
    return bool(
        session.scalar(
            select(ConsentRow.opted_out).where(
                ConsentRow.channel == channel, ConsentRow.address == address
            )
        )
    )
