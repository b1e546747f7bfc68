"""Small facts carebot keeps about itself in the database."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from carebot.store._upsert import dialect_insert, insert_ignore
from carebot.store.models import KeyValueRow

__all__ = ["get", "get_or_create", "put"]


def get(session: Session, key: str) -> str | None:
    """The stored value of ``key``, or None."""
    row = session.get(KeyValueRow, key)
    return None if row is None else row.value


def put(session: Session, key: str, value: str) -> None:
    """Store ``value`` under ``key``, replacing what was there."""
    insert = dialect_insert(session.get_bind().dialect.name, KeyValueRow).values(
        key=key, value=value
    )
    session.execute(insert.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def get_or_create(session: Session, key: str, factory: Callable[[], str]) -> str:
    """The stored value of ``key``; the first caller's ``factory()`` result wins a race."""
    session.execute(insert_ignore(session, KeyValueRow, ["key"]).values(key=key, value=factory()))
    row = session.get(KeyValueRow, key)
    assert row is not None
    return row.value
