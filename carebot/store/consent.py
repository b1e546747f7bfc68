"""Consent: who may be messaged on which channel, with where and when that was said.

Email addresses are compared without regard to case (``Wang@Example.com`` who unsubscribed is
``wang@example.com``); phone numbers are stored as given, which is E.164 everywhere carebot
writes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import ConsentRow

__all__ = ["OPTED_OUT", "address_key", "is_opted_out", "set_consent"]


def address_key(channel: str, address: str) -> str:
    """``address`` as consent is stored under it on ``channel``."""
    address = address.strip()
    return address.lower() if channel == "email" else address


def set_consent(
    session: Session, *, channel: str, address: str, opted_out: bool, source: str, now: datetime
) -> None:
    """Record the latest word of ``address`` on ``channel`` (an opt-out or an opt-in)."""
    address = address_key(channel, address)
    values = {"opted_out": opted_out, "source": source, "changed_at": now}
    session.execute(
        insert_ignore(session, ConsentRow, ["channel", "address"]).values(
            channel=channel, address=address, **values
        )
    )
    # Core, not ORM attributes: a read on the session's connection right after sees it.
    session.execute(
        update(ConsentRow)
        .where(ConsentRow.channel == channel, ConsentRow.address == address)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


# Asked before every planned and every sent message: built once. Parameters: ``channel`` and
# ``address`` (its ``address_key``).
OPTED_OUT = select(ConsentRow.opted_out).where(
    ConsentRow.channel == bindparam("channel"), ConsentRow.address == bindparam("address")
)


def is_opted_out(session: Session, *, channel: str, address: str) -> bool:
    """Whether the latest word of ``address`` on ``channel`` was an opt-out."""
    params = {"channel": channel, "address": address_key(channel, address)}
    return bool(session.connection().scalar(OPTED_OUT, params))
