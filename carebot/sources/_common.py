"""Small helpers shared by the platform mappers (no platform field names here)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from carebot.exceptions import SourceError

__all__ = ["as_dict", "header", "id_text", "parse_time", "text"]


def as_dict(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, or ``SourceError`` naming ``what``."""
    if not isinstance(value, dict):
        raise SourceError(f"{what} is not a JSON object")
    return value


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value, whatever the case of its name (HTTP/2 lowercases them)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip() or None
    return None


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    if value is None or isinstance(value, bool):
        return None
    result = str(value).strip()
    return result or None


def id_text(value: Any, what: str) -> str:
    """A platform id as a string (big integers stay exact), or ``SourceError``."""
    result = text(value)
    if result is None:
        raise SourceError(f"{what} is missing")
    return result


def parse_time(value: Any, *, naive_as_utc: bool = True) -> datetime | None:
    """An ISO 8601 time; a time without offset is read as UTC when ``naive_as_utc``."""
    raw = text(value)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not naive_as_utc:
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
