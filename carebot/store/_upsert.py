"""Dialect-aware ``INSERT … ON CONFLICT`` for SQLite and PostgreSQL."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

__all__ = ["dialect_insert", "insert_ignore", "prepared_insert_ignore"]


def insert_ignore(session: Session, model: Any, conflict_on: list[str]) -> Any:
    """An insert statement on ``model`` that skips rows conflicting on ``conflict_on``."""
    return _insert_ignore(session.get_bind().dialect.name, model, conflict_on)


def dialect_insert(dialect: str, model: Any) -> Any:
    """The insert of ``dialect``'s own module, which has ``ON CONFLICT`` (SQLite, PostgreSQL)."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"carebot does not support the {dialect} dialect")


def _insert_ignore(dialect: str, model: Any, conflict_on: list[str] | tuple[str, ...]) -> Any:
    return dialect_insert(dialect, model).on_conflict_do_nothing(index_elements=list(conflict_on))


@cache
def _prepared(dialect: str, table: Table, conflict_on: tuple[str, ...], returning: str) -> Any:
    return _insert_ignore(dialect, table, conflict_on).returning(table.c[returning])


def prepared_insert_ignore(
    session: Session, table: Table, conflict_on: tuple[str, ...], *, returning: str
) -> Any:
    """A Core insert-ignore on ``table`` returning one column, built once per dialect.

    Execute it with the row as parameters (``session.execute(statement, row)``): hot paths
    then skip building, and SQLAlchemy skips re-keying, a statement for every row.
    """
    return _prepared(session.get_bind().dialect.name, table, conflict_on, returning)
