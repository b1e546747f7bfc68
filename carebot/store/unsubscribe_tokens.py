"""The random unsubscribe token of each email address (one per address, kept for good)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import UnsubscribeTokenRow

__all__ = ["address_for", "random_token", "token_for"]


def random_token() -> str:
    """A new token: 128 random bits, in hex."""
    return secrets.token_hex(16)


def token_for(
    session: Session,
    *,
    address: str,
    now: datetime,
    new_token: Callable[[], str] = random_token,
) -> str:
    """The token of ``address``, created on first use with ``new_token`` (the first writer
    wins a race)."""
    session.execute(
        insert_ignore(session, UnsubscribeTokenRow, ["address"]).values(
            token=new_token(), address=address, created_at=now
        )
    )
    token = session.scalar(
        select(UnsubscribeTokenRow.token).where(UnsubscribeTokenRow.address == address)
    )
    assert token is not None
    return token


def address_for(session: Session, token: str) -> str | None:
    """The address ``token`` was made for, or None."""
    return session.scalar(
        select(UnsubscribeTokenRow.address).where(UnsubscribeTokenRow.token == token)
    )
