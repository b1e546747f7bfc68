"""Persistence: SQLAlchemy models, migrations and the only SQL in carebot."""

from __future__ import annotations

from carebot.store.database import Database

__all__ = ["Database"]
