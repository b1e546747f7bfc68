"""Small facts carebot keeps about itself in the database."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from carebot.store._upsert import insert_ignore
from carebot.store.models import KeyValueRow

__all__ = ["get_or_create"]


def get_or_create(session: Session, key: str, factory: Callable[[], str]) -> str:
    """The stored value of ``key``; the first caller's ``factory()`` result wins a race."""
    session.execute(insert_ignore(session, KeyValueRow, ["key"]).values(key=key, value=factory()))
    row = session.get(KeyValueRow, key)
    assert row is not None
    return row.value
