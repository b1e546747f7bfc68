"""What every ``carebot`` command needs: the settings and a reachable database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from carebot.exceptions import CarebotError
from carebot.settings import Settings, load_settings

if TYPE_CHECKING:
    from carebot.store.database import Database

__all__ = ["load_settings_or_fail", "open_database"]


def load_settings_or_fail() -> Settings:
    """The settings from the environment and config file; ``CarebotError`` when invalid."""
    try:
        return load_settings()
    except ValidationError as exc:
        raise CarebotError(f"configuration error: {exc}") from exc


def open_database(settings: Settings) -> Database:
    """The configured database, checked to be reachable (``StoreError`` otherwise)."""
    from carebot.store.database import Database

    db = Database(settings.database_url)
    db.check()
    return db
