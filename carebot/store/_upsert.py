"""Dialect-aware ``INSERT … ON CONFLICT DO NOTHING`` for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, conflict_on: list[str]) -> Any:
    """An insert statement on ``model`` that skips rows conflicting on ``conflict_on``."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=conflict_on)
    if name == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=conflict_on)
    raise NotImplementedError(f"carebot does not support the {name} dialect")
